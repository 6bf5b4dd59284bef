"""The scheduler, as small replaceable stages (DESIGN §5):

queue (which pending sessions, in what order) → filter (which nodes can take
one) → score (which of those is best) → reserve (take the resources in one
transaction) → bind (tell the agent to start the kernel).
"""
