"""Operations endpoints."""


def test_healthz_answers_without_database(client):
    """/healthz says the process is up."""
    resp = client.get("/healthz")
    assert resp.status_code == 200
    assert resp.get_json() == {"status": "ok"}


def test_readyz_checks_the_database(client):
    """/readyz answers 200 when the database is reachable."""
    resp = client.get("/readyz")
    assert resp.status_code == 200
    assert resp.get_json()["status"] == "ok"
