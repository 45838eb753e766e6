"""The Gateway client's pieces that need no network: signatures, identities, checkpoints, errors."""

from __future__ import annotations

import grpc
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from fabric_protos.gateway import gateway_pb2
from google.protobuf import any_pb2
from google.rpc import status_pb2

from dvp import errors
from dvp_fabric.gateway import (
    Checkpoint,
    EndorseError,
    GatewayUnavailable,
    Signer,
    load_msp,
)
from dvp_fabric.gateway.errors import (
    CommitStatusError,
    CommitStatusTimeout,
    phase_error,
)
from dvp_fabric.gateway.identity import _P256_N


def test_signatures_are_low_s_and_verify():
    key = ec.generate_private_key(ec.SECP256R1())
    signer = Signer(key)
    for i in range(64):  # about half of raw ECDSA signatures have a high S
        message = f"proposal {i}".encode()
        der = signer.sign(message)
        _, s = decode_dss_signature(der)
        assert s <= _P256_N // 2
        key.public_key().verify(der, message, ec.ECDSA(hashes.SHA256()))


def test_signer_refuses_other_curves():
    with pytest.raises(errors.ConfigError, match="P-256"):
        Signer(ec.generate_private_key(ec.SECP384R1()))


def test_load_msp_names_what_is_missing(tmp_path):
    (tmp_path / "signcerts").mkdir()
    with pytest.raises(errors.ConfigError, match="expected one certificate"):
        load_msp("Org1MSP", tmp_path)
    (tmp_path / "signcerts" / "cert.pem").write_bytes(b"-----BEGIN CERTIFICATE-----\n")
    (tmp_path / "keystore").mkdir()
    key = ec.generate_private_key(ec.SECP256R1())
    (tmp_path / "keystore" / "priv_sk").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    identity, _ = load_msp("Org1MSP", tmp_path)
    assert identity.msp_id == "Org1MSP" and identity.serialized.startswith(b"\n\x07Org1MSP")


def test_checkpoint_round_trip_and_bad_text():
    cp = Checkpoint(12, "ab" * 32)
    assert Checkpoint.parse(cp.encode()) == cp
    assert Checkpoint.parse("7:") == Checkpoint(7, "")
    with pytest.raises(errors.ConfigError, match="checkpoint"):
        Checkpoint.parse("seven")


class _RpcError(grpc.aio.AioRpcError):
    def __init__(self, code, message, details=()):
        status = status_pb2.Status(code=code.value[0], message=message)
        for d in details:
            packed = any_pb2.Any()
            packed.Pack(d)
            status.details.append(packed)
        trailing = grpc.aio.Metadata(("grpc-status-details-bin", status.SerializeToString()))
        super().__init__(code, grpc.aio.Metadata(), trailing, details=message)


def test_phase_errors_carry_tx_id_peer_details_and_sit_in_the_dvp_tree():
    detail = gateway_pb2.ErrorDetail(
        address="127.0.0.1:7051",
        msp_id="SellerBankMSP",
        message="chaincode response 500, DVP_LOCK_EXPIRED: lock x expired",
    )
    err = phase_error(EndorseError, _RpcError(grpc.StatusCode.ABORTED, "failed to endorse", [detail]), "tx1", "lock")
    assert isinstance(err, EndorseError) and isinstance(err, errors.SubmitError)
    assert err.tx_id == "tx1" and err.code == "ABORTED"
    assert err.details[0].msp_id == "SellerBankMSP" and "DVP_LOCK_EXPIRED" in str(err)
    down = phase_error(EndorseError, _RpcError(grpc.StatusCode.UNAVAILABLE, "connection refused"), "tx2", "lock")
    assert isinstance(down, GatewayUnavailable) and isinstance(down, errors.LedgerUnavailable)
    late = phase_error(CommitStatusError, _RpcError(grpc.StatusCode.DEADLINE_EXCEEDED, "deadline"), "tx3", "tx")
    assert isinstance(late, CommitStatusTimeout) and isinstance(late, errors.FinalityTimeout)


def test_endorsers_out_of_reach_count_as_unavailable_but_a_missing_chaincode_does_not():
    gone = _RpcError(
        grpc.StatusCode.FAILED_PRECONDITION,
        "no combination of peers can be derived which satisfy "
        "the endorsement policy: no peer combination can satisfy the endorsement policy",
    )
    assert isinstance(phase_error(EndorseError, gone, "tx", "issue"), GatewayUnavailable)
    missing = _RpcError(
        grpc.StatusCode.FAILED_PRECONDITION,
        "no combination of peers can be derived which satisfy "
        "the endorsement policy: No metadata was found for chaincode dvp in channel fabric-a",
    )
    err = phase_error(EndorseError, missing, "tx", "issue")
    assert isinstance(err, EndorseError) and not isinstance(err, GatewayUnavailable)


def test_chaincode_codes_choose_the_dvp_error():
    from dvp_fabric.boundary import translate

    def refused(code_and_reason: str) -> EndorseError:
        detail = gateway_pb2.ErrorDetail(
            address="127.0.0.1:7051", msp_id="BuyerBankMSP", message=f"chaincode response 500, {code_and_reason}"
        )
        return phase_error(EndorseError, _RpcError(grpc.StatusCode.ABORTED, "failed to endorse", [detail]), "tx9", "x")

    assert isinstance(translate(refused("DVP_LOCK_EXPIRED: lock l expired"), "claim on f"), errors.LockExpired)
    assert isinstance(
        translate(refused("DVP_INVALID_PREIMAGE: preimage is 33 bytes"), "claim on f"), errors.InvalidPreimage
    )
    not_sender = translate(refused("DVP_UNAUTHORIZED: only the sender may refund lock l"), "refund on f")
    assert type(not_sender) is errors.LockError and not_sender.tx_id == "tx9"
    poor = translate(refused("DVP_INSUFFICIENT_FUNDS: seller holds 1 BOND, needs 2"), "lock on f")
    assert isinstance(poor, EndorseError) and poor.code == "DVP_INSUFFICIENT_FUNDS"
    assert (
        str(poor)
        == "lock on f: the chaincode refused it at endorse: DVP_INSUFFICIENT_FUNDS: seller holds 1 BOND, needs 2 (tx tx9)"
    )
