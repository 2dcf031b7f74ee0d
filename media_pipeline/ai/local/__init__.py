"""The local AI backend's engines: models that ship inside packages, run on the CPU with one
thread each, load lazily once per process and never reach the network."""
