import threading

import pytest

from common.background import in_background


def test_the_result_and_the_thread_that_computed_it_which_does_not_hold_the_process_open():
    def work(a: int, b: int) -> tuple[int, bool]:
        return a + b, threading.current_thread().daemon

    assert in_background(work, 2, 3).result(timeout=10) == (5, True)


def test_an_exception_is_handed_to_whoever_asks_for_the_result():
    def fail() -> None:
        raise KeyboardInterrupt("raised in the thread")

    with pytest.raises(KeyboardInterrupt, match="raised in the thread"):
        in_background(fail).result(timeout=10)
