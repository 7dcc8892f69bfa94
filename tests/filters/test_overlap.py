"""filters/overlap.py: reading ahead within a byte budget, and an ordered map on threads."""

import threading

import pytest
from thinkforge.filters.overlap import ReadAhead, ordered_map, read_ahead


@pytest.mark.parametrize("workers", [1, 2, 4])
def test_ordered_map_keeps_the_items_order(workers):
    assert list(ordered_map(lambda x: x * x, range(50), workers)) == [x * x for x in range(50)]
    assert list(ordered_map(lambda x: x, [], workers)) == []


def test_ordered_map_runs_items_at_once_on_two_workers():
    """Item 0 finishes only after item 1 started: one worker alone would wait forever."""
    started = threading.Event()

    def work(i):
        if i == 0:
            assert started.wait(30), "item 1 did not start while item 0 ran"
        else:
            started.set()
        return i

    assert list(ordered_map(work, [0, 1], 2)) == [0, 1]


def test_ordered_map_raises_the_items_error():
    def work(i):
        if i == 3:
            raise ValueError("bad item 3")
        return i

    got = []
    with pytest.raises(ValueError, match="bad item 3"):
        for x in ordered_map(work, range(10), 2):
            got.append(x)
    assert got == [0, 1, 2]


def test_read_ahead_yields_every_item_in_order():
    with ReadAhead(iter(range(100)), lambda x: 1, 7) as items:
        assert list(items) == list(range(100))


def test_read_ahead_makes_no_more_than_its_budget_ahead():
    made = []
    second = threading.Event()

    def items():
        for i in range(10):
            made.append(i)
            if i == 1:
                second.set()
            yield i

    ahead = ReadAhead(items(), lambda x: 5, 10)  # two items fill the budget
    assert second.wait(30)
    ahead.close()  # nothing taken: it stopped before making a third
    assert made == [0, 1]


def test_read_ahead_raises_the_readers_error_and_closes_without_reading():
    def items():
        yield 1
        raise OSError("shard 2 unreadable")

    with ReadAhead(items(), lambda x: 1, 100) as ahead, pytest.raises(OSError, match="shard 2"):
        list(ahead)
    never = ReadAhead(iter(range(5)), lambda x: 1, 100)
    never.close()
    never.close()  # twice: nothing left to stop


@pytest.mark.parametrize("background", [False, True])
def test_read_ahead_keeps_one_item_ahead_in_a_thread_only_when_asked(background):
    """In the background, item 1 is made (in another thread) while the caller holds item 0;
    not in the background, every item is made by the caller, when it asks for it."""
    made = []

    def items():
        for i in range(3):
            made.append((i, threading.current_thread() is threading.main_thread()))
            yield i

    ahead = read_ahead(items(), background)
    assert next(ahead) == 0
    if background:
        deadline = threading.Event()
        for _ in range(300):  # the reader makes item 1 on its own; give it up to 3 s
            if len(made) == 2:
                break
            deadline.wait(0.01)
        assert [i for i, _ in made] == [0, 1] and not any(main for _, main in made)
    else:
        assert made == [(0, True)]
    assert list(ahead) == [1, 2]
