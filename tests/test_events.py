"""EventLog: append-only, cursor reads, JSONL mirror, replay."""
import json
import threading

from studio.events import (Checkpoint, EventLog, Failed, Finished, Log, Note, Probe, Started, Stopped,
                           event_from_dict)


def test_since_cursor_and_jsonl_mirror(tmp_path):
    path = tmp_path / "events.jsonl"
    log = EventLog(path)
    log.append(Started(run_dir=str(tmp_path), model="m", total_steps=3))
    log.append(Log(step=1, loss=2.5, learning_rate=2e-4, tokens_per_s=100.0))
    events, cur = log.since(0)
    assert [e.type for e in events] == ["started", "log"] and cur == 2
    log.append(Log(step=2, loss=float("nan")))
    events, cur2 = log.since(cur)
    assert len(events) == 1 and events[0].step == 2 and cur2 == 3
    assert log.since(cur2) == ([], 3)
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert lines[1]["type"] == "log" and lines[1]["step"] == 1 and lines[1]["loss"] == 2.5
    assert lines[1]["learning_rate"] == 2e-4 and "time" in lines[1]
    assert lines[2]["loss"] is None  # NaN is not JSON


def test_replay_round_trip(tmp_path):
    path = tmp_path / "events.jsonl"
    log = EventLog(path)
    sent = [Started(run_dir="r", model="m", total_steps=2, loaded={"quantization": "none"}),
            Log(step=1, loss=1.0), Checkpoint(step=1, path="c"), Probe(step=1, prompt="p", answer="a"),
            Note(message="hi", data={"x": 1}), Stopped(step=1, adapter_path="a"),
            Failed(message="boom", suggestion="less"), Finished(step=2, adapter_path="a", train_loss=0.5)]
    for e in sent:
        log.append(e)
    with path.open("a") as fh:
        fh.write('{"type": "log", "step": 9, "loss"')  # a line cut short by a crash
    again = EventLog.read(path).all()
    assert again == sent
    assert EventLog.read(tmp_path / "missing.jsonl").all() == []
    assert event_from_dict({"type": "nope"}).type == "note"
    assert EventLog.read(path).last(Log).step == 1


def test_open_appends_after_history(tmp_path):
    path = tmp_path / "events.jsonl"
    EventLog(path).append(Log(step=1))
    log = EventLog.open(path)
    log.append(Log(step=2))
    assert [e.step for e in EventLog.read(path).all()] == [1, 2]
    assert len(log) == 2


def test_wait_wakes_on_append_and_threads_do_not_lose_events(tmp_path):
    log = EventLog(tmp_path / "e.jsonl")
    assert log.wait(0, timeout=0.01) is False
    threads = [threading.Thread(target=lambda i=i: [log.append(Log(step=i * 100 + k)) for k in range(50)])
               for i in range(4)]
    for t in threads:
        t.start()
    assert log.wait(0, timeout=5)
    for t in threads:
        t.join()
    assert len(log) == 200
    assert len((tmp_path / "e.jsonl").read_text().splitlines()) == 200
