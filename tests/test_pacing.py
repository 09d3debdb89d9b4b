"""The watcher's pacing, alone: fed times and costs by hand, no thread, no real clock."""

import pytest

from sigreload.watching import pacing
from sigreload.watching.pacing import HOT_AGE, HOT_MAX, MAX_BURST, POLL_BUDGET, SETTLE, Pacing


def test_a_save_settles_after_a_short_quiet():
    p = Pacing(interval=0.1)
    p.heat(["/s/a.html"], 9.0)  # edited before: a save
    p.found(["/s/a.html"], 10.0)
    assert p.burst(10.0) is None
    assert p.sleep(10.0, []) == pytest.approx(SETTLE)
    assert p.burst(10.0 + SETTLE) == ["/s/a.html"]
    assert p.burst(20.0) is None and not p.pending


def test_a_new_or_cold_file_waits_a_little_longer_for_a_burst_behind_it():
    p = Pacing(interval=0.1)
    p.found(["/s/new.html"], 10.0)
    assert p.settle() == pytest.approx(pacing.BURST_SETTLE + 0.001)
    assert p.burst(10.0 + SETTLE) is None


def test_a_burst_is_one_call_after_its_last_write():
    p = Pacing(interval=0.1)
    for i in range(300):  # a checkout: a change every 2 ms
        last = 10.0 + i * 0.002
        p.found([f"/s/f{i}.html"], last)
        assert p.burst(last) is None
    assert p.settle() == 0.1  # a big burst waits longer for its tail
    assert p.burst(last + 0.099) is None
    call = p.burst(last + 0.101)
    assert len(call) == 300 and call == sorted(call)


def test_a_never_ending_stream_still_calls_back_every_max_burst():
    p = Pacing(interval=0.1)
    now, calls = 0.0, []
    while now < 3 * MAX_BURST:
        p.found([f"/s/f{now:.3f}"], now)
        calls += [now] if p.burst(now) else []
        now += 0.001
    assert len(calls) == 2 and calls[0] == pytest.approx(MAX_BURST, abs=0.002)


def test_the_sweep_period_keeps_within_the_budget():
    p = Pacing(interval=0.1)
    assert p.period(0.0001) == 0.1  # a small tree: every tick
    assert p.period(0.001) == pytest.approx(0.5)  # costing more than SMALL_SHARE at every tick
    assert p.period(0.01) == 1.0  # SWEEP_TARGET ...
    assert p.period(0.071) == pytest.approx(0.071 / POLL_BUDGET)  # ... unless that overspends
    p.overhead = 0.02  # what the ticks themselves cost: the sweep gets the rest
    assert p.period(0.071) == pytest.approx(0.071 / (POLL_BUDGET / 2))
    p.use_hints()
    assert p.period(0.0001) == pacing.HINT_PERIOD


def test_the_overhead_is_measured_every_two_seconds_and_smoothed():
    p = Pacing()
    p.account(0.0, 1.0)
    p.account(1.0, 1.5)
    assert p.overhead == 0
    p.account(2.0, 1.1)  # 0.1 s of CPU in 2 s: 5% of a core, a quarter of it counts
    assert p.overhead == pytest.approx(0.05 / 4)


def test_slices_fall_at_fixed_points_and_the_next_sweep_does_not_drift():
    p = Pacing(interval=0.1)
    cost = 3.5 * pacing.SLICE  # four slices
    period = p.period(cost)
    assert p.due(100.0, cost, 100.0 + period * 0.3) == (0.25, pytest.approx(100.0 + period / 2))
    assert p.due(100.0, cost, 100.0 + period * 2)[0] == 1.0
    assert p.next_sweep(100.0, cost, 100.0 + period) == 100.0 + period
    assert p.next_sweep(100.0, cost, 200.0) == pytest.approx(199.9)  # long past: now


def test_sleep_ticks_only_while_something_is_hot():
    p = Pacing(interval=0.1)
    assert p.sleep(50.0, [52.0]) == pytest.approx(2.0)  # nothing hot: until the next slice
    assert p.sleep(50.0, []) == 0.1
    p.heat(["/s/a.html"], 50.0)
    assert p.sleep(50.0, [52.0]) == 0.1
    assert p.sleep(50.0, [52.0], ticking=False) == 0.1
    p.use_hints()  # hints tell about hot files too: no ticks
    assert p.sleep(50.0, [52.0]) == pytest.approx(2.0)
    assert p.sleep(50.0, [49.0]) == 0.001  # overdue: at once


def test_the_hot_list_keeps_the_newest_and_cools_down():
    p = Pacing()
    for half in (0, 1):
        p.heat([f"/s/old{i}" for i in range(half * HOT_MAX // 2, (half + 1) * HOT_MAX // 2)], 0.0)
    assert p.heat(["/s/new"], 100.0)[0] == "/s/new"
    assert len(p.heated) == HOT_MAX and "/s/old0" in p.heated  # the list keeps its order
    assert not p.cooled(HOT_AGE - 1)
    assert p.cooled(HOT_AGE)  # the first ones are old now
    assert list(p.heated) == ["/s/new"]
    assert p.cooled(100.0 + HOT_AGE) and p.heated == {}
    assert not p.cooled(10_000.0)


def test_a_burst_leaves_the_files_hot_before_it_hot():
    p = Pacing()
    p.heat(["/s/index.html", "/s/style.css"], 0.0)
    p.heat([f"/s/d/f{i}.txt" for i in range(500)], 1.0)
    assert "/s/index.html" in p.heated and "/s/style.css" in p.heated and "/s/d/f499.txt" in p.heated
    assert len(p.heated) == HOT_MAX // 2 + 2


def test_found_changes_get_hot():
    p = Pacing()
    p.found(["/s/b.css", "/s/a.html"], 5.0)
    assert set(p.heated) == {"/s/a.html", "/s/b.css"}
    p.found([], 6.0)
    assert p.last == 5.0


def test_a_burst_found_while_polling_is_gathered_by_full_sweeps_until_one_is_clean():
    p = Pacing(interval=0.1)
    assert p.gather() and not p.gather()  # the second: already gathering
    assert p.due(100.0, 0.5, 100.0) == (1.0, 100.0)  # the whole tree, now, however costly
    assert p.next_sweep(100.0, 0.5, 100.2) == 100.2
    p.found(["/s/d0/f1.txt", "/s/d1/f2.txt"], 100.2)
    p.swept(True, 100.2)  # this sweep found more
    assert p.burst(100.3) is None and p.sleep(100.2, []) == pytest.approx(pacing.GATHER_QUIET)
    p.swept(False, 100.2 + pacing.GATHER_QUIET / 2)  # found nothing, but too soon to tell the burst is over
    assert p.burst(100.3) is None
    p.swept(False, 100.201 + pacing.GATHER_QUIET)  # a full sweep, begun after the quiet, found nothing
    assert p.burst(100.3) == ["/s/d0/f1.txt", "/s/d1/f2.txt"] and not p.gathering


def test_a_lone_save_is_settled_by_the_sweep_right_after_it():
    p = Pacing()
    p.heat(["/s/index.html"], 6.0)
    p.gather(cost=0.01)
    p.found(["/s/index.html"], 7.0)
    p.swept(False, 7.0)
    assert p.burst(7.0) == ["/s/index.html"]


def test_a_hot_file_gathers_its_burst_only_where_a_full_sweep_is_cheap():
    p = Pacing()
    assert not p.gather(cost=pacing.GATHER_COST * 2)  # 100,000 files: the hot file goes out at once
    assert p.gather(cost=pacing.GATHER_COST / 2)


def test_a_gathering_that_never_comes_clean_still_ends_after_max_burst():
    p = Pacing()
    p.gather()
    p.found(["/s/a"], 0.0)
    assert p.burst(MAX_BURST) is None
    assert p.burst(MAX_BURST + 0.01) == ["/s/a"]


def test_a_change_the_sweep_found_long_after_it_was_written_is_already_quiet():
    p = Pacing()
    p.found(["/s/d7/cold.txt"], 50.0, age=1.2)  # written 1.2 s before the sweep reached it
    assert p.gather()
    assert p.sleep(50.0, []) == 0.001  # the sweep that may end it: at once
    p.swept(False, 50.001)
    assert p.burst(50.001) == ["/s/d7/cold.txt"]


def test_finding_a_pending_path_again_keeps_a_clean_sweep_clean():
    p = Pacing()
    p.heat(["/s/a.html"], 0.0)
    p.gather(cost=0.01)
    p.found(["/s/a.html"], 1.0)
    p.swept(False, 1.0)
    p.found(["/s/a.html"], 1.0)  # reported twice (a hint and a tick): nothing new
    assert p.burst(1.0) == ["/s/a.html"]
