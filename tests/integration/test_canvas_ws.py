"""The canvas dialect's WebSocket: the shared action log of a room."""
import asyncio
import json
import uuid

import pytest
import websockets

from conftest import (assert_error, assert_strictly_increasing, close_all,
                      close_ws, collect_actions, connect, create_room,
                      expect_close, http_req, join_room, pointers, poll,
                      recv_json, room_listed, run, strip_pointers, ws_open,
                      ws_url)


def uid(prefix="ws"):
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def new_room(d, guests=()):
    """-> (roomId, {name: token}) with the host named 'host'."""
    rid = uid()
    toks = {"host": create_room(d, host="host", room_id=rid)["token"]}
    for g in guests:
        toks[g] = join_room(d, rid, g)["token"]
    return rid, toks


async def open_error(d, url):
    """Connect to url, expect an error message then a close; return
    (first message as JSON, close code)."""
    ws = await ws_open(url)
    try:
        msgs, code, _ = await expect_close(ws)
    finally:
        await close_ws(ws)
    assert msgs, f"{url}: closed ({code}) without an error message"
    return json.loads(msgs[0]), code


async def check_still_open_and_log(d, ws, rid, viewer_token, expected_log):
    """The connection still works (a valid action comes back) and the room's
    whole log is expected_log plus that action."""
    marker = {"moveto": [7, 7], "marker": uuid.uuid4().hex}
    await ws.send(json.dumps(marker))
    got = await collect_actions(ws, 1)
    assert strip_pointers(got) == [marker], \
        f"after the error the connection did not echo a valid action: {got}"
    v, log, _ = await connect(d, rid, viewer_token)
    try:
        assert strip_pointers(log) == expected_log + [marker], \
            f"room log is not what was validly sent: {log}"
    finally:
        await close_ws(v)


# ---------------------------------------------------------------- opening

def test_fresh_room_first_message_is_empty_array(roomd):
    rid, t = new_room(roomd)

    async def body():
        ws, first, _ = await connect(roomd, rid, t["host"])
        await close_ws(ws)
        return first
    assert run(body()) == []


def test_unknown_room_gets_no_such_room_then_close_1008(roomd):
    async def body():
        return await open_error(roomd, ws_url(roomd, uid("nope"), "0" * 32))
    msg, code = run(body())
    assert msg.get("error") == "no_such_room", msg
    assert code == 1008


@pytest.mark.parametrize("which", ["missing", "wrong", "other-room", "empty"])
def test_bad_token_gets_bad_token_then_close_1008(roomd, which):
    rid, t = new_room(roomd)
    _, other = new_room(roomd)
    token = {"missing": None, "wrong": "f" * 32, "other-room": other["host"],
             "empty": ""}[which]
    # a member keeps the room alive and sees nothing of the bad attempt
    async def body():
        ws, _, _ = await connect(roomd, rid, t["host"])
        try:
            return await open_error(roomd, ws_url(roomd, rid, token))
        finally:
            await close_ws(ws)
    msg, code = run(body())
    assert msg.get("error") == "bad_token", msg
    assert code == 1008


@pytest.mark.parametrize("ptr", ["-1", "abc", "1.5", "", "1a"])
def test_bad_pointer_gets_bad_pointer_then_close_1008(roomd, ptr):
    rid, t = new_room(roomd, ["g"])

    async def body():
        ws, _, _ = await connect(roomd, rid, t["host"])
        try:
            return await open_error(roomd, ws_url(roomd, rid, t["g"], ptr))
        finally:
            await close_ws(ws)
    msg, code = run(body())
    assert msg.get("error") == "bad_pointer", msg
    assert code == 1008


# ---------------------------------------------------------------- appending

def test_single_action_object_gets_pointer_1_and_is_echoed_to_sender(roomd):
    rid, t = new_room(roomd)

    async def body():
        ws, _, _ = await connect(roomd, rid, t["host"])
        try:
            await ws.send(json.dumps({"moveto": [10, 20]}))
            return await collect_actions(ws, 1)
        finally:
            await close_ws(ws)
    assert run(body()) == [{"moveto": [10, 20], "pointer": 1}]


def test_batch_is_appended_in_order_with_increasing_pointers(roomd):
    rid, t = new_room(roomd)
    batch = [{"moveto": [0, 0]}, {"lineto": [5, 5]}, {"lineto": [9, 1]},
             {"moveto": [3, 3]}]

    async def body():
        ws, _, _ = await connect(roomd, rid, t["host"])
        try:
            await ws.send(json.dumps(batch))
            return await collect_actions(ws, len(batch))
        finally:
            await close_ws(ws)
    got = run(body())
    assert strip_pointers(got) == batch
    assert got[0]["pointer"] == 1
    assert_strictly_increasing(pointers(got))


def test_client_supplied_pointer_is_replaced_by_server(roomd):
    rid, t = new_room(roomd)

    async def body():
        ws, _, _ = await connect(roomd, rid, t["host"])
        try:
            await ws.send(json.dumps([{"moveto": [1, 1], "pointer": 99},
                                      {"lineto": [2, 2], "pointer": "x"}]))
            return await collect_actions(ws, 2)
        finally:
            await close_ws(ws)
    got = run(body())
    assert strip_pointers(got) == [{"moveto": [1, 1]}, {"lineto": [2, 2]}], got
    assert got[0]["pointer"] == 1, got
    assert isinstance(got[1]["pointer"], int) and got[1]["pointer"] > 1, got


def test_any_action_name_and_extra_keys_are_kept_as_sent(roomd):
    rid, t = new_room(roomd)
    acts = [{"moveto": [1.5, -2], "color": "#ff0000", "width": 3},
            {"stamp": {"shape": "star", "n": 5}, "tags": ["a", None, True]},
            {"clear": None},
            {"text": "h\u00e9llo \u2603 \"quoted\"", "nested": {"a": {"b": [1, 2]}}}]

    async def body():
        ws, _, _ = await connect(roomd, rid, t["host"])
        try:
            await ws.send(json.dumps(acts))
            return await collect_actions(ws, len(acts))
        finally:
            await close_ws(ws)
    got = run(body())
    assert strip_pointers(got) == acts


def test_every_member_receives_actions_including_the_sender(roomd):
    rid, t = new_room(roomd, ["g1", "g2"])
    acts = [{"moveto": [i, i]} for i in range(5)]

    async def body():
        conns = [await connect(roomd, rid, t[n]) for n in ("host", "g1", "g2")]
        wss = [c[0] for c in conns]
        try:
            await wss[1].send(json.dumps(acts[:2]))
            await wss[2].send(json.dumps(acts[2]))
            await wss[0].send(json.dumps(acts[3:]))
            return await asyncio.gather(*(collect_actions(w, 5) for w in wss))
        finally:
            await close_all(wss)
    res = run(body())
    for got in res:
        assert_strictly_increasing(pointers(got))
        assert sorted(map(json.dumps, strip_pointers(got))) == \
            sorted(map(json.dumps, acts))
    assert res[0] == res[1] == res[2], res
    # each member's batch stayed in its own order
    seq = strip_pointers(res[0])
    assert seq.index(acts[0]) + 1 == seq.index(acts[1])
    assert seq.index(acts[3]) + 1 == seq.index(acts[4])


def test_new_member_first_message_is_the_whole_log(roomd):
    rid, t = new_room(roomd, ["late"])
    acts = [{"moveto": [i, -i]} for i in range(7)]

    async def body():
        ws, _, _ = await connect(roomd, rid, t["host"])
        try:
            await ws.send(json.dumps(acts[:3]))
            await ws.send(json.dumps(acts[3:]))
            mine = await collect_actions(ws, 7)
            late, first, _ = await connect(roomd, rid, t["late"])
            await close_ws(late)
            return mine, first
        finally:
            await close_ws(ws)
    mine, first = run(body())
    assert isinstance(first, list)
    assert first == mine
    assert strip_pointers(first) == acts


def test_reconnect_with_pointer_gets_exactly_the_later_actions(roomd):
    rid, t = new_room(roomd, ["g"])
    acts = [{"lineto": [i, 2 * i]} for i in range(6)]

    async def body():
        ws, _, _ = await connect(roomd, rid, t["host"])
        try:
            await ws.send(json.dumps(acts))
            log = await collect_actions(ws, 6)
            ps = pointers(log)
            out = {}
            for p in (0, ps[0], ps[2], ps[-1]):
                g, first, _ = await connect(roomd, rid, t["g"], pointer=p)
                await close_ws(g)
                out[p] = first
            return log, out
        finally:
            await close_ws(ws)
    log, out = run(body())
    ps = pointers(log)
    assert out[0] == log
    assert out[ps[0]] == log[1:]
    assert out[ps[2]] == log[3:]
    assert out[ps[-1]] == []


def test_reconnected_member_then_receives_only_new_actions(roomd):
    rid, t = new_room(roomd, ["g"])

    async def body():
        ws, _, _ = await connect(roomd, rid, t["host"])
        try:
            await ws.send(json.dumps([{"moveto": [1, 1]}, {"lineto": [2, 2]}]))
            log = await collect_actions(ws, 2)
            g, first, _ = await connect(roomd, rid, t["g"], pointer=log[0]["pointer"])
            try:
                await ws.send(json.dumps({"lineto": [3, 3]}))
                more = await collect_actions(g, 1, quiet=0.5)
            finally:
                await close_ws(g)
            return log, first, more
        finally:
            await close_ws(ws)
    log, first, more = run(body())
    assert first == log[1:]
    assert strip_pointers(more) == [{"lineto": [3, 3]}]
    assert more[0]["pointer"] > log[1]["pointer"]


# ---------------------------------------------------------------- bad input

def _bad_input_case(d, payload, code):
    rid, t = new_room(d, ["viewer"])
    good = {"moveto": [0, 0], "first": True}

    async def body():
        ws, _, _ = await connect(d, rid, t["host"])
        try:
            await ws.send(json.dumps(good))
            await collect_actions(ws, 1, quiet=0)
            await ws.send(payload)
            err = await recv_json(ws)
            assert isinstance(err, dict) and err.get("error") == code, \
                f"sent {payload!r:.200}: expected error {code}, got {err!r}"
            assert isinstance(err.get("message"), str), err
            await check_still_open_and_log(d, ws, rid, t["viewer"], [good])
        finally:
            await close_ws(ws)
    run(body())


@pytest.mark.parametrize("payload", ["not json", "{\"moveto\": [1,", "[{]", "",
                                     "{'single': 'quotes'}"],
                         ids=["words", "truncated", "broken-array", "empty",
                              "single-quotes"])
def test_not_json_gets_bad_json_and_connection_stays_open(roomd, payload):
    _bad_input_case(roomd, payload, "bad_json")


@pytest.mark.parametrize("payload", ["42", "\"text\"", "null", "true", "1.5"])
def test_json_neither_array_nor_object_gets_bad_request(roomd, payload):
    _bad_input_case(roomd, payload, "bad_request")


@pytest.mark.parametrize("batch", [
    [1], ["moveto"], [None], [[{"moveto": [1, 1]}]], [{}], [{"pointer": 5}],
    [{"moveto": [1, 1]}, 7], [{"moveto": [1, 1]}, {"lineto": [2, 2]}, {}],
    [{"lineto": [2, 2]}, {"pointer": 1}, {"moveto": [3, 3]}],
    {}, {"pointer": 3},
], ids=["number", "string", "null", "nested-array", "empty-object",
        "only-pointer", "valid-then-number", "valid-valid-empty",
        "only-pointer-in-middle", "object-empty", "object-only-pointer"])
def test_bad_action_gets_bad_action_and_nothing_of_the_batch_is_appended(roomd, batch):
    _bad_input_case(roomd, json.dumps(batch), "bad_action")


def test_binary_frame_gets_bad_frame_and_connection_stays_open(roomd):
    _bad_input_case(roomd, json.dumps({"moveto": [1, 1]}).encode(), "bad_frame")


def test_empty_array_appends_nothing_and_gets_no_reply(roomd):
    rid, t = new_room(roomd, ["viewer"])

    async def body():
        ws, _, _ = await connect(roomd, rid, t["host"])
        try:
            await ws.send("[]")
            try:
                m = await recv_json(ws, 0.7)
            except asyncio.TimeoutError:
                m = None
            assert m is None, f"'[]' got a reply: {m!r}"
            await check_still_open_and_log(roomd, ws, rid, t["viewer"], [])
        finally:
            await close_ws(ws)
    run(body())


def test_log_full_error_when_room_log_exceeds_max_and_connection_stays_open(roomd_factory):
    d = roomd_factory("room_log_max_bytes 4096\n")
    rid, t = new_room(d, ["viewer"])

    async def body():
        ws, _, _ = await connect(d, rid, t["host"])
        try:
            accepted, err = [], None
            for i in range(200):
                a = {"lineto": [i, i], "pad": "p" * 300, "i": i}
                await ws.send(json.dumps(a))
                m = await recv_json(ws)
                if isinstance(m, dict):
                    err = m
                    break
                accepted.extend(m)
            assert err is not None, "4096-byte log never reported log_full " \
                f"after {len(accepted)} actions of ~330 bytes"
            assert err.get("error") == "log_full", err
            assert accepted, "log_full before a single 330-byte action"
            # still open: a ping is answered and another append is refused
            # the same way
            pong = await ws.ping(b"after-full")
            await asyncio.wait_for(pong, 5)
            await ws.send(json.dumps([{"moveto": [1, 1]}, {"lineto": [2, 2], "pad": "q" * 300}]))
            m2 = await recv_json(ws)
            assert isinstance(m2, dict) and m2.get("error") == "log_full", m2
            v, log, _ = await connect(d, rid, t["viewer"])
            await close_ws(v)
            assert log == accepted, "the log holds more than what was accepted"
        finally:
            await close_ws(ws)
    run(body())


def test_text_message_over_default_max_message_bytes_closes_1009(roomd):
    rid, t = new_room(roomd, ["other"])
    head = '{"moveto":[0,0],"pad":"'
    big = head + "x" * ((1 << 20) + 1 - len(head) - 2) + '"}'
    assert len(big.encode()) == (1 << 20) + 1

    async def body():
        keeper, _, _ = await connect(roomd, rid, t["other"])
        ws, _, _ = await connect(roomd, rid, t["host"])
        try:
            try:
                await asyncio.wait_for(ws.send(big), 5)
            except websockets.ConnectionClosed:
                pass
            _, code, _ = await expect_close(ws)
            return code
        finally:
            await close_all([ws, keeper])
    assert run(body()) == 1009


# ---------------------------------------------------------------- room life

def test_delete_room_closes_every_member_on_every_worker_with_1000_room_deleted(roomd):
    rid, t = new_room(roomd, ["g"])

    async def body():
        h, _, (slot_h, _) = await connect(roomd, rid, t["host"])
        # the guest on the other worker (when there is one)
        g, _, _ = await connect(roomd, rid, t["g"],
                                slot=None if roomd.external else 1 - slot_h)
        try:
            r = await asyncio.get_running_loop().run_in_executor(
                None, lambda: http_req(roomd, "DELETE", f"/canvas/rooms/{rid}",
                                       headers={"Authorization": f"Bearer {t['host']}"}))
            assert r.status == 204, repr(r)
            res = await asyncio.gather(expect_close(h), expect_close(g))
            return [(c, reason) for _, c, reason in res]
        finally:
            await close_all([h, g])
    res = run(body())
    assert res == [(1000, "room deleted"), (1000, "room deleted")], res
    assert not room_listed(roomd, rid)


def test_room_is_deleted_when_its_last_websocket_closes(roomd):
    rid, t = new_room(roomd)

    async def body():
        ws, _, _ = await connect(roomd, rid, t["host"])
        await ws.send(json.dumps({"moveto": [1, 2]}))
        await collect_actions(ws, 1, quiet=0)
        await close_ws(ws)
    run(body())
    assert poll(lambda: not room_listed(roomd, rid), 3.0), \
        "room still listed 3 s after its last WebSocket closed"
    r = http_req(roomd, "POST", f"/canvas/rooms/{rid}/join", {"name": "late"})
    assert_error(r, 404, "no_such_room")


def test_room_and_log_survive_while_one_member_remains(roomd):
    rid, t = new_room(roomd, ["g", "late"])

    async def body():
        h, _, _ = await connect(roomd, rid, t["host"])
        g, _, _ = await connect(roomd, rid, t["g"])
        try:
            await g.send(json.dumps([{"moveto": [4, 4]}, {"lineto": [5, 5]}]))
            await collect_actions(h, 2, quiet=0)
            await close_ws(g)
            await asyncio.sleep(0.5)
            assert room_listed(roomd, rid), "room vanished while its host is connected"
            late, first, _ = await connect(roomd, rid, t["late"])
            await close_ws(late)
            return first
        finally:
            await close_all([h, g])
    first = run(body())
    assert strip_pointers(first) == [{"moveto": [4, 4]}, {"lineto": [5, 5]}]


def test_client_ping_is_answered_with_pong(roomd):
    rid, t = new_room(roomd)

    async def body():
        ws, _, _ = await connect(roomd, rid, t["host"])
        try:
            waiter = await ws.ping(b"roomd-ping-42")
            await asyncio.wait_for(waiter, 5)
            return True
        finally:
            await close_ws(ws)
    assert run(body()) is True
