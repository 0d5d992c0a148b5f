"""Parameters, the launch and its checks, dead letters: what every job shares. Imports no job."""
