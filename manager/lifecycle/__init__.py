"""The session and kernel lifecycle: the transition table and the guarded writes that apply it."""
