"""What the EOS server does with a server's token files, done here against the real services."""

import httpx


def eos_file_owner(path: str) -> dict:
    """Check an eosxd token file as the EOS server does (``oauth2:<jwt>:<resource>``: the token goes
    to ``<resource>``, the provider's userinfo); returns whom it answers for. The development IAM
    serves plain http where EOS would call https."""
    prefix, token, resource = open(path).read().split(":", 2)
    assert prefix == "oauth2"
    answer = httpx.get(f"http://{resource}", headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert answer.status_code == 200, f"the EOS file's resource refused its token: {answer.status_code} {answer.text}"
    return answer.json()
