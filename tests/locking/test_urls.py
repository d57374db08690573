"""Redis URLs: one server, the sentinels of a master, a Cluster."""

import pytest
from redis.sentinel import SentinelConnectionPool

from locking import make_redis_client
from locking.urls import kombu_sentinel_url, parse_redis_url, redacted


def test_a_plain_url_is_one_server():
    target = parse_redis_url("redis://127.0.0.1:6379/3")
    assert target.kind == "server"


def test_a_sentinel_url_names_its_sentinels_master_and_db():
    target = parse_redis_url(
        "sentinel://:s3cret@10.0.0.1:26379,10.0.0.2,[::1]:26381/mymaster/4"
        "?sentinel_password=other"
    )
    assert target.kind == "sentinel"
    assert target.nodes == (
        ("10.0.0.1", 26379),
        ("10.0.0.2", 26379),
        ("::1", 26381),
    )
    assert (target.master, target.db) == ("mymaster", 4)
    assert (target.password, target.sentinel_password) == ("s3cret", "other")


def test_a_sentinel_url_without_master_is_refused():
    with pytest.raises(ValueError, match="names its master"):
        parse_redis_url("sentinel://127.0.0.1:26379")


def test_kombu_gets_one_url_per_sentinel_and_the_master_as_option():
    url, options = kombu_sentinel_url(
        parse_redis_url("sentinel://:pw@h1:26379,h2:26380/mymaster/2")
    )
    assert url == "sentinel://:pw@h1:26379/2;sentinel://:pw@h2:26380/2"
    assert options == {"master_name": "mymaster"}


def test_a_cluster_url_has_startup_nodes_and_database_zero_only():
    target = parse_redis_url("redis+cluster://u:p@h1:7000,h2:7001")
    assert target.kind == "cluster"
    assert target.nodes == (("h1", 7000), ("h2", 7001))
    assert (target.username, target.password) == ("u", "p")
    with pytest.raises(ValueError, match="database 0 only"):
        parse_redis_url("redis+cluster://h1:7000/3")


def test_redacted_hides_the_password():
    assert redacted("sentinel://:pw@h1:1,h2:2/m/0") == "sentinel://:***@h1:1,h2:2/m/0"
    assert redacted("redis://u:pw@h/0") == "redis://u:***@h/0"
    assert redacted("redis://h/0") == "redis://h/0"


def test_make_redis_client_builds_a_sentinel_managed_client():
    client = make_redis_client("sentinel://127.0.0.1:1/mymaster/5", socket_timeout=1)
    pool = client.connection_pool
    assert isinstance(pool, SentinelConnectionPool)
    assert pool.service_name == "mymaster"
    assert pool.connection_kwargs["db"] == 5
    assert pool.connection_kwargs["socket_timeout"] == 1


def test_an_unreachable_cluster_is_locking_unavailable():
    from locking import LockingUnavailable

    with pytest.raises(LockingUnavailable, match="Redis Cluster"):
        make_redis_client("redis+cluster://127.0.0.1:1", socket_timeout=0.2)
