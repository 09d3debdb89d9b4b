"""The broadcaster's policy, alone: fed signals, messages, clients and times by hand; no socket, no clock."""

from sigreload import livereload
from sigreload.broadcasting.core import (
    COLLECT_AFTER,
    COLLECT_MOST,
    CREDIT_WINDOW,
    MIN_GAP,
    RECENT_AGE,
    RECENT_PATHS,
    REPORT_GAP,
    Core,
    Features,
)

WALL = 1_700_000_000_000  # ms


def save(*paths, root="r1", **more):
    """What the watcher posts for one pass (messages.post)."""
    return {"root": root, "paths": list(paths), **more}


def sent_to(broadcast, client):
    """What ``client`` hears from one broadcast (messages in order)."""
    return [message for clients, message in broadcast.deliveries if client in clients]


def core(**features):
    c = Core(boot="b00t", features=Features(**features))
    c.join("page", "snippet", 0.0, WALL)
    c.join("pasted", "plain", 0.0, WALL)
    return c


def test_a_signal_with_its_message_goes_to_each_client_in_its_own_words():
    c = core()
    c.join("lr", "livereload", 0.0, WALL)
    c.signal("reload")
    assert c.flush_due(1.0)
    b = c.flush([save("/a.html")], 1.0, WALL)
    assert sent_to(b, "page") == [{"type": "reload", "boot": "b00t", "generation": 1, "paths": ["/a.html"],
                                   "root": "r1"}]
    assert sent_to(b, "pasted") == ["reload"]
    assert sent_to(b, "lr") == livereload.commands("reload", ["/a.html"])
    assert b.told == 3 and c.generation == 1


def test_signals_within_the_gap_merge_into_one_broadcast_at_its_end():
    c = core()
    c.signal("css")
    c.flush([save("/s.css")], 1.0, WALL)
    c.signal("reload")
    c.signal("css")  # reload beats css
    assert not c.flush_due(1.0 + MIN_GAP / 2)
    assert c.next_deadline() == 1.0 + MIN_GAP
    b = c.flush([save("/a.html"), save("/b.css")], 1.0 + MIN_GAP, WALL)
    assert b.event["type"] == "reload" and b.event["paths"] == ["/a.html", "/b.css"]
    assert c.generation == 2 and not c.flush_due(5.0)
    for _ in range(100):  # a storm of bare kills: one broadcast, of every file
        c.signal("css")
    b = c.flush([], 1.0 + 2 * MIN_GAP, WALL)
    assert b.event == {"type": "css", "boot": "b00t", "generation": 3} and c.flush([], 9.0, WALL) is None


def test_a_bare_kill_reloads_every_page_even_when_merged_with_a_watchers_save():
    c = core()
    c.signal("reload")
    assert "paths" not in c.flush([], 1.0, WALL).event  # no message: every file
    c.signal("reload")
    c.signal("reload")  # a save and a bare kill in one gap: two signals, one message
    assert "paths" not in c.flush([save("/a.html")], 2.0, WALL).event


def test_a_message_read_before_its_signal_came_stands_for_it_for_a_moment():
    c = core()
    c.signal("reload")
    first = c.flush([save("/a.html"), save("/b.html")], 1.0, WALL)  # the second's signal is still on its way
    assert first.event["paths"] == ["/a.html", "/b.html"]
    c.signal("reload")  # ... here it is: already sent
    assert c.flush([], 1.0 + MIN_GAP, WALL) is None and c.generation == 1
    c.signal("reload")  # a bare kill later is one again
    assert "paths" not in c.flush([], 1.0 + CREDIT_WINDOW + MIN_GAP, WALL).event


def test_an_old_credit_never_hides_a_bare_kill():
    c = core()
    c.signal("reload")
    c.flush([save("/a.html"), save("/b.html")], 1.0, WALL)
    c.signal("reload")
    assert c.flush([], 1.0 + CREDIT_WINDOW + 0.01, WALL) is not None


def test_a_failed_build_reaches_only_snippets_and_stays_in_the_hello_until_a_good_one():
    c = core()
    c.signal("reload")
    b = c.flush([save("/a.py"), {"error": "SyntaxError: line 3"}], 1.0, WALL)
    assert sent_to(b, "page") == [{"type": "error", "boot": "b00t", "generation": 1, "text": "SyntaxError: line 3"}]
    assert sent_to(b, "pasted") == [] and b.told == 1
    assert c.join("late", "snippet", 2.0, WALL)["error"] == "SyntaxError: line 3"
    c.signal("reload")
    b = c.flush([save("/a.py", notice="warning: unused")], 3.0, WALL)
    assert b.event["notice"] == "warning: unused" and sent_to(b, "pasted") == ["reload"]
    hello = c.join("later", "snippet", 4.0, WALL)
    assert "error" not in hello and hello["notice"] == "warning: unused"
    c.signal("reload")
    c.flush([], 5.0, WALL)  # a bare kill keeps the last build's notice
    assert c.hello(WALL)["notice"] == "warning: unused"


def test_a_hello_recalls_recent_broadcasts_for_a_page_that_was_away():
    c = core(morph=True, follow=True)
    c.signal("reload")
    c.flush([save("/a.html")], 1.0, WALL)
    c.signal("css")
    c.flush([save(*[f"/{i}.css" for i in range(RECENT_PATHS + 1)])], 2.0, WALL + 1000)
    hello = c.join("back", "snippet", 3.0, WALL + 2000)
    assert hello["generation"] == 2 and hello["boot"] == "b00t" and hello["morph"] and hello["follow"]
    assert hello["recent"] == [
        {"type": "reload", "generation": 1, "at": WALL, "paths": ["/a.html"], "root": "r1"},
        {"type": "css", "generation": 2, "at": WALL + 1000, "paths": None, "root": None},  # too many: every file
    ]
    assert len(c.hello(WALL + 1000 * RECENT_AGE + 500)["recent"]) == 1  # the first is too old now
    assert c.join("pasted2", "plain", 3.0, WALL) is None  # an original snippet hears nothing on joining


def test_a_client_that_left_hears_nothing():
    c = core()
    c.leave("page", 1.0)
    c.leave("page", 1.0)  # idempotent
    c.signal("reload")
    b = c.flush([], 2.0, WALL)
    assert sent_to(b, "page") == [] and b.told == 1


def test_follow_sends_the_chosen_tab_to_the_saved_page_and_the_others_the_change():
    asked = []

    def choose(clients, paths, used):
        asked.append((list(clients), paths, sorted(used)))
        return clients[0], paths[0]

    c = Core(boot="b", features=Features(follow=True), choose=choose)
    c.join("focused", "snippet", 0.0, WALL)
    c.join("other", "snippet", 0.0, WALL)
    c.uses("other", ["/style.css"], 0.0)
    c.signal("reload")
    b = c.flush([save("/new.html")], 1.0, WALL)
    assert asked == [(["focused", "other"], ["/new.html"], ["/style.css"])]
    assert sent_to(b, "focused") == [{"type": "follow", "path": "/new.html", "boot": "b", "generation": 1}]
    assert [m["type"] for m in sent_to(b, "other")] == ["reload"]
    assert b.followed == "/new.html" and b.told == 1


def test_follow_never_navigates_sources_nor_follows_a_stylesheet_refresh():
    def choose(clients, paths, used):
        raise AssertionError("asked")

    for features, kind in ((Features(follow=True, navigate=False), "reload"), (Features(follow=True), "css")):
        c = Core(boot="b", features=features, choose=choose)
        c.join("p", "snippet", 0.0, WALL)
        c.signal(kind)
        assert c.flush([save("/new.html")], 1.0, WALL).followed is None


def test_what_pages_use_is_counted_and_reported_at_most_every_report_gap():
    c = core()
    c.uses("page", ["/a.css", "/b.js"], 1.0)
    c.join("p2", "snippet", 1.0, WALL)
    c.uses("p2", ["/a.css"], 1.01)
    assert dict(c.counts) == {"/a.css": 2, "/b.js": 1}
    assert not c.report_due(1.0 + REPORT_GAP / 2) and c.next_deadline() == 1.0 + REPORT_GAP
    assert c.report_due(1.0 + REPORT_GAP) and not c.report_due(2.0)
    c.leave("page", 3.0)
    assert dict(c.counts) == {"/a.css": 1}
    assert c.report_due(3.0 + REPORT_GAP)


def test_collection_waits_for_the_comings_and_goings_to_settle_but_not_forever():
    c = Core(boot="b")
    c.join("a", "snippet", 10.0, WALL)
    assert c.next_deadline() == 10.0 + COLLECT_AFTER
    c.leave("a", 11.0)
    assert not c.collect_due(10.0 + COLLECT_AFTER)  # someone left meanwhile: later
    assert c.next_deadline() == 11.0 + COLLECT_AFTER
    assert c.collect_due(11.0 + COLLECT_AFTER) and c.next_deadline() is None
    now = 100.0
    c.busy(now)
    while not c.collect_due(now):  # a crowd that never settles
        now += 0.5
        c.busy(now)
    assert now <= 100.0 + COLLECT_MOST + COLLECT_AFTER


def test_nothing_pending_means_no_deadline_and_no_broadcast():
    c = core()
    assert c.next_deadline() is not None  # the joins' collection
    assert c.collect_due(COLLECT_AFTER) and c.next_deadline() is None
    assert not c.flush_due(10.0) and c.flush([save("/a.html")], 10.0, WALL) is None


def test_a_reload_of_one_page_carries_the_current_generation():
    c = core()
    c.signal("reload")
    c.flush([], 1.0, WALL)
    assert c.reload() == {"type": "reload", "boot": "b00t", "generation": 1}


def test_the_watchers_word_on_the_app_is_kept_for_the_log_down_then_back_once():
    """The broadcaster logs "app down: said to N page(s)", then "app back: ..." for the
    first good broadcast after it (before: "css sent to 1 page(s) ()")."""
    c, now = core(), 1.0
    said = []
    for kind, message in [("css", save(notice="Your app does not answer", app="down")),
                          ("reload", save("/views.py")), ("reload", save("/views.py")),
                          ("css", save(notice="Your app does not answer", app="down")),
                          ("reload", {"error": "broken"}), ("reload", {"root": "r1", "app": "back"})]:
        c.signal(kind)
        said.append(c.flush([message], now, WALL).app)
        now += MIN_GAP + 0.1
    assert said == ["down", "back", None, "down", None, "back"]
