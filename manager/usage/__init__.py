"""Usage accounting: CPU-core-hours, GPU-hours and memory-hours per user and project, per day, from the
sessions table (`report`), and decayed usage for the fair-share queue policy (`decayed`)."""
