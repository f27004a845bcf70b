"""hasten's Redis protocol: key layout, Lua scripts and connections.

Only the scripts in `lua/` change a job's state; everything else reads.
"""
