"""The local broker's pure helpers: no Java, no Kafka."""

import base64

import pytest

from devtools import local_broker as lb


def test_broker_address_takes_the_first_server_and_pins_localhost_to_ipv4():
    assert lb.broker_address("localhost:9092,other:9092") == ("127.0.0.1", 9092)
    assert lb.broker_address("PLAINTEXT://10.0.0.5:19092") == ("10.0.0.5", 19092)


def test_broker_address_without_a_port_is_an_error():
    with pytest.raises(lb.BrokerError):
        lb.broker_address("127.0.0.1")


def test_cluster_id_is_16_bytes_urlsafe_base64_without_padding():
    cid = lb.new_cluster_id()
    assert len(cid) == 22 and "=" not in cid
    assert len(base64.urlsafe_b64decode(cid + "==")) == 16


def draws(*first_bytes: int):
    """A stand-in random source: 16-byte values starting with the given bytes, in order."""
    values = iter(bytes([b]) + bytes(range(1, 16)) for b in first_bytes)
    return lambda: next(values)


def test_cluster_id_never_starts_with_a_dash_but_may_start_with_an_underscore():
    # 0xF8 encodes to "-..." (base64 value 62), 0xFC to "_..." (63): the dash is drawn again.
    assert base64.urlsafe_b64encode(bytes([0xF8]) + bytes(15)).startswith(b"-")
    cid = lb.new_cluster_id(draws(0xF8, 0xFB, 0xFC))
    assert cid.startswith("_") and base64.urlsafe_b64decode(cid + "==")[0] == 0xFC


def test_cluster_id_holds_no_dash_anywhere_and_never_a_reserved_uuid():
    dash_inside = bytes([0x41, 0x0F, 0x80]) + bytes(13)  # "QQ-A...": Kafka avoids it since KAFKA-20072
    assert "-" in base64.urlsafe_b64encode(dash_inside).decode()
    values = iter([bytes(16), (1).to_bytes(16), dash_inside, bytes([0x41]) + bytes(15)])
    cid = lb.new_cluster_id(lambda: next(values))
    assert base64.urlsafe_b64decode(cid + "==") == bytes([0x41]) + bytes(15)


def test_many_cluster_ids_hold_no_dash():
    assert not any("-" in lb.new_cluster_id() for _ in range(2000))


def test_server_properties_put_the_controller_on_the_next_port():
    text = lb.render_server_properties("127.0.0.1", 19092, lb.Path("/tmp/x"))
    assert "listeners=PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093" in text
    assert "controller.quorum.voters=1@127.0.0.1:19093" in text
    assert "advertised.listeners=PLAINTEXT://127.0.0.1:19092" in text
    assert "offsets.topic.replication.factor=1" in text
    assert "log.dirs=/tmp/x" in text
    assert "$" not in text


def test_cluster_id_is_read_back_from_meta_properties():
    assert lb.cluster_id_from_meta("version=1\ncluster.id=abc_DEF-12\nnode.id=1\n") == "abc_DEF-12"
    assert lb.cluster_id_from_meta("version=1\n") is None


def test_log4j_version_is_read_from_kafka_server_pom():
    pom = """<dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-core</artifactId>
      <version>2.25.3</version>
      <scope>runtime</scope>"""
    assert lb.log4j_version_from_pom(pom) == "2.25.3"


@pytest.mark.parametrize(
    ("output", "major"),
    [('openjdk version "17.0.15" 2025-04-15', 17), ('java version "1.8.0_402"', 8), ('openjdk version "21" 2023', 21)],
)
def test_java_major_version_is_parsed(output, major):
    assert lb.parse_java_major(output) == major


def test_free_port_pair_gives_two_free_consecutive_ports():
    port = lb.free_port_pair()
    assert lb.port_free("127.0.0.1", port) and lb.port_free("127.0.0.1", port + 1)
