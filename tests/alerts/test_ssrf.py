"""The webhook SSRF policy: what is refused, why, and what --webhook-allow exempts.

No DNS is available in tests except for localhost, so host names go through a fake resolver and
public addresses are written as literals.
"""

from __future__ import annotations

import pytest

from driftgate.alerts.ssrf import WebhookRefused, check_url


def fake_dns(table: dict[str, list[str]]):
    def resolve(host: str) -> list[str]:
        if host not in table:
            raise WebhookRefused(f"webhook host {host!r} does not resolve", field="notify")
        return table[host]

    return resolve


REFUSED = [
    # (url, words the reason must contain)
    ("http://127.0.0.1:9000/hook", "127.0.0.1 is loopback"),
    ("http://127.8.9.10/", "loopback"),
    ("http://[::1]/", "::1 is loopback"),
    ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is link-local; pass --webhook-allow"),
    ("http://10.1.2.3/", "10.1.2.3 is private"),
    ("http://172.16.0.1/", "private"),
    ("http://192.168.1.1/", "private"),
    ("http://100.64.0.1/", "100.64.0.0/10"),
    ("http://100.127.255.254/", "CGNAT"),
    ("http://0.0.0.0/", "unspecified"),
    ("http://[::]/", "unspecified"),
    ("http://224.0.0.1/", "multicast"),
    ("http://[ff02::1]/", "multicast"),
    ("http://240.0.0.1/", "reserved"),
    ("http://255.255.255.255/", "reserved"),
    ("http://[fc00::1]/", "unique local"),
    ("http://[fd12:3456::1]/", "unique local"),
    ("http://[fe80::1]/", "link-local"),
    ("http://[::ffff:127.0.0.1]/", "IPv4-mapped"),
    ("http://[::ffff:7f00:1]/", "IPv4-mapped"),
    ("http://[::ffff:169.254.169.254]/", "IPv4-mapped"),
    ("http://[::127.0.0.1]/", "IPv4-compatible"),
    ("http://[::a00:1]/", "IPv4-compatible"),
    ("http://[64:ff9b::7f00:1]/", "NAT64 address embedding 127.0.0.1, which is loopback"),
    ("http://[64:ff9b::a9fe:a9fe]/", "embedding 169.254.169.254, which is link-local"),
    ("http://[2002:7f00:1::]/", "6to4 address embedding 127.0.0.1"),
    ("http://[2002:c0a8:0101::1]/", "6to4 address embedding 192.168.1.1, which is private"),
    ("http://2130706433/", "non-canonical IPv4 form of 127.0.0.1"),
    ("http://0x7f000001/", "non-canonical IPv4 form of 127.0.0.1"),
    ("http://0177.0.0.1/", "non-canonical IPv4 form of 127.0.0.1"),
    ("http://0x7f.0.0.1/", "non-canonical"),
    ("http://127.1/", "non-canonical IPv4 form of 127.0.0.1"),
    ("http://127.0.1/", "non-canonical"),
    ("http://169.254.43518/", "non-canonical IPv4 form of 169.254.169.254"),
    ("http://127.0.0.1./", "ends with a dot"),
    ("http://localhost./", "ends with a dot"),
    ("http://example.com./", "ends with a dot"),
    ("http://localhost:8080/", "localhost (127.0.0.1) is loopback"),
    ("http://LOCALHOST/", "loopback"),
    ("http://api.localhost/", "api.localhost (127.0.0.1) is loopback"),
    ("ftp://93.184.216.34/", "scheme must be http or https"),
    ("file:///etc/passwd", "scheme must be http or https"),
    ("gopher://93.184.216.34:70/", "scheme"),
    ("http://user:pw@93.184.216.34/", "user info"),
    ("http://93.184.216.34@127.0.0.1/", "user info"),
    ("http://93.184.216.34\\@127.0.0.1/", "backslashes"),
    ("http:///path-only", "no host"),
    ("http://93.184.216.34:99999/", "invalid port"),
    ("http://[fe80::1%25eth0]/", "zone id"),
]


@pytest.mark.parametrize(("url", "reason"), REFUSED)
def test_refused(url: str, reason: str) -> None:
    with pytest.raises(WebhookRefused) as caught:
        check_url(url, resolve=fake_dns({}))
    assert reason in caught.value.message
    assert caught.value.status_code == 400
    assert caught.value.details["field"] == "notify"


@pytest.mark.parametrize(
    "url",
    [
        "https://93.184.216.34/hooks/T000/B000/secret",
        "http://93.184.216.34:8080/x",
        "https://[2606:4700::1111]/hook",
        "https://[64:ff9b::5db8:d822]/",  # NAT64 of a public address
        "https://[2002:5db8:d822::1]/",  # 6to4 of a public address
        "https://8.8.8.8/",
    ],
)
def test_public_addresses_pass(url: str) -> None:
    assert check_url(url, resolve=fake_dns({}))


def test_every_resolved_address_must_pass() -> None:
    dns = fake_dns(
        {
            "hooks.example.com": ["93.184.216.34", "2606:4700::1111"],
            "rebind.example.com": ["93.184.216.34", "10.0.0.7"],
            "metadata.example.com": ["169.254.169.254"],
        }
    )
    assert check_url("https://hooks.example.com/x", resolve=dns) == ["93.184.216.34", "2606:4700::1111"]
    with pytest.raises(WebhookRefused, match=r"rebind\.example\.com \(10\.0\.0\.7\) is private"):
        check_url("https://rebind.example.com/x", resolve=dns)
    with pytest.raises(WebhookRefused, match=r"169\.254\.169\.254"):
        check_url("https://metadata.example.com/", resolve=dns)
    with pytest.raises(WebhookRefused, match="does not resolve"):
        check_url("https://nowhere.example.com/", resolve=dns)


def test_the_system_resolver_refuses_what_does_not_resolve() -> None:
    with pytest.raises(WebhookRefused, match="does not resolve"):
        check_url("https://no-such-host.invalid/hook")


def test_allow_list_exempts_cidrs_addresses_and_host_names() -> None:
    dns = fake_dns({"hooks.internal": ["10.0.0.5"], "mixed.internal": ["10.0.0.5", "192.168.0.9"]})
    assert check_url("http://127.0.0.1:9000/", allow=["127.0.0.1"])
    assert check_url("http://127.0.0.1:9000/", allow=["127.0.0.0/8"])
    assert check_url("http://[::1]/", allow=["::1"])
    assert check_url("http://[::1]/", allow=["[::1]"])
    assert check_url("http://169.254.169.254/", allow=["169.254.0.0/16"]) == ["169.254.169.254"]
    assert check_url("http://hooks.internal/x", allow=["10.0.0.0/24"], resolve=dns)
    # A host name entry exempts that name whatever it resolves to.
    assert check_url("http://hooks.internal/x", allow=["hooks.internal"], resolve=dns) == []
    assert check_url("http://localhost:8080/", allow=["localhost"]) == []
    # Every address must be covered; localhost is both 127.0.0.1 and ::1.
    with pytest.raises(WebhookRefused, match=r"mixed\.internal \(192\.168\.0\.9\) is private"):
        check_url("http://mixed.internal/", allow=["10.0.0.0/24"], resolve=dns)
    with pytest.raises(WebhookRefused, match=r"::1\) is loopback"):
        check_url("http://localhost/", allow=["127.0.0.1"])
    # Allowing one address is not allowing its neighbours, nor other families.
    with pytest.raises(WebhookRefused, match=r"127\.0\.0\.2 is loopback"):
        check_url("http://127.0.0.2/", allow=["127.0.0.1"])
    with pytest.raises(WebhookRefused, match=r"10\.0\.0\.1 is private"):
        check_url("http://10.0.0.1/", allow=["hooks.internal"], resolve=dns)
    # Encoded forms stay refused even where the address they mean is allowed.
    with pytest.raises(WebhookRefused, match="non-canonical"):
        check_url("http://2130706433/", allow=["127.0.0.1"])
