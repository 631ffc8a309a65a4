from helpers import Phone, report_op, update_op, note_op, transition_op


def test_report_then_update_then_note(client, auth):
    phone = Phone(client, auth, "wanggeyuan")
    op = report_op()
    r = phone.one(op)
    assert r["status"] == "applied", r
    assert r["case_version"] == 1
    cid = r["case_id"]
    r = phone.one(update_op(cid, 1, {"risk_level": "red"}))
    assert r["status"] == "applied", r
    r = phone.one(note_op(cid))
    assert r["status"] == "applied", r
    assert r["case_version"] == 3
    r2 = phone.one(op)
    assert r2["status"] == "duplicate"
