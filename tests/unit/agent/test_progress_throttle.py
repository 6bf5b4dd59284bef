from corral.agent.progress_throttle import ProgressThrottle


def test_at_most_one_message_a_second_and_the_last_one_on_flush() -> None:
    now = [100.0]
    sent: list[str] = []
    throttle = ProgressThrottle(sent.append, interval_s=1.0, clock=lambda: now[0])
    throttle("a")  # the first goes out at once
    for message in ["b", "c", "d"]:
        now[0] += 0.3
        throttle(message)
    assert sent == ["a"]
    now[0] += 0.2  # 1.1 s after "a"
    throttle("e")
    assert sent == ["a", "e"]
    now[0] += 0.1
    throttle("f")
    throttle("g")
    throttle.flush()  # the final state gets through even within the second
    assert sent == ["a", "e", "g"]
    throttle.flush()  # nothing held back: nothing more
    assert sent == ["a", "e", "g"]


def test_unchanged_lines_are_not_repeated() -> None:
    now = [0.0]
    sent: list[str] = []
    throttle = ProgressThrottle(sent.append, clock=lambda: now[0])
    for _ in range(3):
        throttle("same")
        now[0] += 5
    throttle.flush()
    assert sent == ["same"]
