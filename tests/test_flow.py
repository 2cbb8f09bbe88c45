"""The visitor's journey, driven with a fake clock (no Qt, no waiting)."""
from __future__ import annotations

from kiosk.flow import Flow, State, Timing
from kiosk.messages import Analysis

READY = Analysis(faces=1, near=True, ready=True, steady=True)
CLOSER = Analysis(faces=1, near=True, hint="hint_come_closer")
NOBODY = Analysis(faces=0)


def started(timing: Timing = Timing()) -> Flow:
    flow = Flow(timing)
    assert flow.state is State.SPLASH
    flow.ready(0.0)
    assert flow.state is State.ATTRACT
    return flow


def test_a_face_coming_near_opens_the_live_view_and_a_still_face_counts_down_to_a_capture():
    flow = started()
    flow.analysed(NOBODY, 1.0)
    assert flow.state is State.ATTRACT
    flow.analysed(CLOSER, 1.1)
    assert (flow.state, flow.hint) == (State.LIVE, "hint_come_closer")
    flow.analysed(READY, 2.0)
    flow.analysed(READY, 2.5)
    assert flow.state is State.LIVE, "not still for long enough yet"
    flow.analysed(READY, 3.0)
    assert flow.state is State.COUNTDOWN
    assert [flow.countdown_left(t) for t in (3.0, 4.1, 5.1)] == [3, 2, 1]
    assert flow.tick(5.9) is False
    assert flow.tick(6.0) is True
    assert flow.state is State.SEARCHING
    flow.results("", 6.3)
    assert flow.state is State.RESULTS


def test_moving_away_during_the_countdown_goes_back_to_the_live_view():
    flow = started()
    flow.touch(1.0)
    flow.analysed(READY, 1.0)
    flow.analysed(READY, 2.0)
    assert flow.state is State.COUNTDOWN
    flow.analysed(Analysis(faces=2, near=True, hint="hint_one_person"), 2.5)
    assert (flow.state, flow.hint) == (State.LIVE, "hint_one_person")


def test_touch_starts_from_attract_captures_in_live_and_tries_again_from_results():
    flow = started()
    assert flow.touch(1.0) is False and flow.state is State.LIVE
    assert flow.touch(2.0) is True and flow.state is State.SEARCHING
    assert flow.touch(2.1) is False and flow.state is State.SEARCHING
    flow.results("", 2.5)
    assert flow.touch(3.0) is False and flow.state is State.RESULTS, "pointing at a portrait keeps the results"
    flow.try_again(3.5)
    assert flow.state is State.LIVE


def test_a_touch_just_as_a_face_turns_the_attract_screen_live_starts_no_capture():
    flow = started()
    flow.analysed(Analysis(faces=1, hint="hint_come_closer"), 1.0)
    assert flow.state is State.LIVE
    assert flow.touch(1.2) is False and flow.state is State.LIVE, "meant for the attract screen"
    assert flow.touch(1.6) is True and flow.state is State.SEARCHING


def test_a_capture_without_a_face_says_so_in_the_live_view():
    flow = started()
    flow.touch(1.0)
    flow.touch(2.0)
    flow.results("fail_no_face", 2.2)
    assert (flow.state, flow.hint) == (State.LIVE, "fail_no_face")


def test_idle_screens_go_back_to_attract_and_forget_the_visitor():
    flow = started(Timing(idle_seconds=10, results_seconds=15))
    flow.touch(1.0)
    flow.analysed(NOBODY, 5.0)
    flow.tick(10.9)
    assert flow.state is State.LIVE
    flow.tick(11.0)
    assert flow.state is State.ATTRACT and flow.forgets_visitor
    flow.touch(20.0)
    flow.touch(21.0)
    flow.results("", 21.5)
    for now in range(22, 37):
        flow.analysed(READY, now)  # the visitor is still there, but results do not stay forever
    flow.tick(36.4)
    assert flow.state is State.RESULTS
    flow.tick(36.5)
    assert flow.state is State.ATTRACT


def test_a_camera_failure_shows_the_wait_screen_until_it_is_back():
    flow = started()
    flow.touch(1.0)
    flow.camera_lost("cannot open camera 0", 2.0)
    assert flow.state is State.CAMERA_WAIT and flow.forgets_visitor
    flow.touch(3.0)
    assert flow.state is State.CAMERA_WAIT
    flow.camera_back(4.0)
    assert flow.state is State.ATTRACT


def test_any_face_on_the_attract_screen_gets_an_answer_at_once():
    flow = started()
    flow.analysed(Analysis(faces=1, hint="hint_come_closer"), 5.0)  # far away, not near yet
    assert (flow.state, flow.hint) == (State.LIVE, "hint_come_closer")


def test_a_camera_lost_during_the_splash_is_shown_once_ready():
    flow = Flow()
    flow.camera_lost("cannot open camera 0", 0.5)
    assert flow.state is State.SPLASH
    flow.ready(3.0)
    assert flow.state is State.CAMERA_WAIT and flow.camera_problem == "cannot open camera 0"
    flow.camera_back(4.0)
    assert flow.state is State.ATTRACT and flow.camera_problem == ""


def test_a_camera_back_during_the_splash_is_not_lost_once_ready():
    flow = Flow()
    flow.camera_lost("cannot open camera 0", 0.5)
    flow.camera_back(1.0)
    flow.ready(3.0)
    assert flow.state is State.ATTRACT


def in_results(timing: Timing = Timing()) -> Flow:
    flow = started(timing)
    flow.touch(1.0)
    flow.touch(2.0)
    flow.results("", 10.0)
    assert flow.state is State.RESULTS
    return flow


def test_results_close_about_eight_seconds_after_the_face_is_gone():
    flow = in_results()
    flow.analysed(READY, 12.0)
    flow.analysed(NOBODY, 12.5)
    flow.tick(19.9)
    assert flow.state is State.RESULTS
    assert abs(flow.results_left(19.0) - 1.0 / 30) < 1e-9, "the ring shows the share of results_seconds left"
    flow.tick(20.0)
    assert flow.state is State.ATTRACT


def test_the_timer_ring_runs_down_while_the_visitor_stays():
    flow = in_results()
    assert flow.results_left(10.0) == 8 / 30, "the visitor was seen at the capture"
    flow.analysed(READY, 35.0)
    assert flow.results_left(35.0) == 5 / 30 and flow.results_left(40.0) == 0.0, "30 s at most"


def test_a_failure_hint_stays_three_seconds_before_the_next_live_hint():
    flow = started()
    flow.touch(1.0)
    flow.touch(2.0)
    flow.results("fail_search", 2.2)
    for now in (2.3, 3.0, 4.0, 5.1):
        flow.analysed(READY, now)
        assert (flow.state, flow.hint) == (State.LIVE, "fail_search")
    flow.analysed(CLOSER, 5.2)
    assert flow.hint == "hint_come_closer"


def test_staff_leaving_restarts_the_visitor_screens():
    flow = in_results()
    flow.restart(11.0)
    assert flow.state is State.ATTRACT
    flow.camera_lost("camera 0 stopped sending frames", 12.0)
    flow.restart(13.0)
    assert flow.state is State.CAMERA_WAIT


def test_a_search_never_answered_fails_instead_of_waiting_for_ever():
    flow = started()
    flow.touch(1.0)
    flow.touch(2.0)
    flow.tick(16.9)
    assert flow.state is State.SEARCHING
    flow.tick(17.0)
    assert (flow.state, flow.hint) == (State.LIVE, "fail_search")
    flow.results("", 18.0)
    assert flow.state is State.LIVE, "a late answer is not shown"
