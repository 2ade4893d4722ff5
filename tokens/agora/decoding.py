"""Decoding, verifying and inspecting 006 and 007 tokens, by reading Agora's packed bytes
here (no library parser: theirs print, return False, or raise on a service type they lack)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import struct
import zlib
from collections.abc import Mapping
from dataclasses import dataclass

from tokens.agora.formats import (
    PRIVILEGE_NAMES,
    PRIVILEGE_NAMES_006,
    PRIVILEGE_RTM_LOGIN_006,
    RTM2_PERMISSION_NAMES,
    RTM2_RESOURCE_NAMES,
    SERVICE_APAAS,
    SERVICE_CHAT,
    SERVICE_FCDN,
    SERVICE_NAMES,
    SERVICE_RTC,
    SERVICE_RTM,
    SERVICE_RTM2,
    SERVICE_STREAMING,
    TS_006_OFFSET,
    VERSION_006,
    VERSION_007,
    InvalidTokenError,
    is_hex32,
)

_APP_ID_LENGTH = 32


@dataclass(frozen=True)
class DecodedService:
    """One service inside a token: its privileges and whom it names.

    A service type this engine does not know keeps its bytes in `raw` (see decode()).
    """

    type: int
    privileges: dict[int, int]
    channel: str | None = None  # RTC, Streaming, FCDN (007); APaaS: the room uuid
    account: str | None = None  # RTC uid as signed ("" = wildcard), Streaming, FCDN (007)
    user_id: str | None = None  # RTM, Chat, RTM2 (007); APaaS: the user uuid
    role: int | None = None  # APaaS
    permissions: dict[int, dict[int, tuple[str, ...]]] | None = None  # RTM2
    raw: bytes | None = None  # unknown type: every byte after its type number

    @property
    def name(self) -> str:
        return SERVICE_NAMES.get(self.type, "unknown")


@dataclass(frozen=True)
class PrivilegeExpiry:
    """When one privilege of a decoded token ends; None: it has no expiry of its own."""

    privilege: int
    name: str
    seconds: int | None  # after the token's issue time
    expires_at: int | None  # unix time


@dataclass(frozen=True)
class DecodedToken:
    """Every field of a 006 or 007 token.

    007: privileges are seconds after `issued_at`. 006: privileges are absolute unix times,
    the channel and uid are carried only as CRC32s, and `issued_at` is inferred from `ts`.
    """

    version: str
    app_id: str
    issued_at: int
    expires_at: int
    salt: int
    services: tuple[DecodedService, ...]
    signature: bytes
    signed_content: bytes  # the bytes the signature covers (006: without channel and uid)
    ts: int | None = None  # 006
    channel_crc: int | None = None  # 006
    account_crc: int | None = None  # 006
    declared_services: int = 1  # how many services the token says it carries

    def service(self, service_type: int) -> DecodedService | None:
        return next((s for s in self.services if s.type == service_type), None)

    @property
    def complete(self) -> bool:
        """False when an unknown service type stopped the decoding (see decode())."""
        return all(s.raw is None for s in self.services)


class _Reader:
    """Little-endian reader over Agora's packed bytes that refuses to read past the end."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise InvalidTokenError("token content is truncated")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def uint16(self) -> int:
        return struct.unpack("<H", self.take(2))[0]

    def uint32(self) -> int:
        return struct.unpack("<I", self.take(4))[0]

    def int16(self) -> int:
        return struct.unpack("<h", self.take(2))[0]

    def bytes_(self) -> bytes:
        return self.take(self.uint16())

    def text(self) -> str:
        try:
            return self.bytes_().decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidTokenError("token carries a string that is not UTF-8") from exc

    def uint32_map(self) -> dict[int, int]:
        return {self.uint16(): self.uint32() for _ in range(self.uint16())}

    def rest(self) -> bytes:
        return self.data[self.pos :]

    def end(self) -> None:
        if self.pos != len(self.data):
            raise InvalidTokenError("token has trailing bytes")


def _b64(data: str) -> bytes:
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidTokenError("token is not valid base64") from exc


def _decode_007(body: str) -> DecodedToken:
    try:
        # Bound the output: a real token inflates to well under 64 KiB.
        inflater = zlib.decompressobj()
        raw = inflater.decompress(_b64(body), 65536)
        if inflater.unconsumed_tail or not inflater.eof:
            raise InvalidTokenError("token content is not a complete zlib stream")
    except zlib.error as exc:
        raise InvalidTokenError("token content is not zlib-compressed") from exc
    reader = _Reader(raw)
    signature = reader.bytes_()
    signed = reader.rest()
    app_id = reader.text()
    issue_ts = reader.uint32()
    expire = reader.uint32()
    salt = reader.uint32()
    declared = reader.uint16()
    services = []
    for _ in range(declared):
        service_type = reader.uint16()
        if service_type not in SERVICE_NAMES:
            # A service's payload carries no length, so nothing past an unknown type can be
            # located: keep its bytes and stop, as Agora's own parsers do.
            services.append(DecodedService(service_type, {}, raw=reader.rest()))
            break
        services.append(_read_service(reader, service_type))
    else:
        reader.end()
    return DecodedToken(
        version=VERSION_007,
        app_id=app_id,
        issued_at=issue_ts,
        expires_at=issue_ts + expire,
        salt=salt,
        services=tuple(services),
        signature=signature,
        signed_content=signed,
        declared_services=declared,
    )


def _read_service(reader: _Reader, service_type: int) -> DecodedService:
    """One known 007 service after its type number: privileges, then its own fields."""
    privileges = reader.uint32_map()
    if service_type in (SERVICE_RTC, SERVICE_STREAMING, SERVICE_FCDN):
        channel = reader.text()
        account = reader.text()
        return DecodedService(service_type, privileges, channel=channel, account=account)
    if service_type in (SERVICE_RTM, SERVICE_CHAT):
        return DecodedService(service_type, privileges, user_id=reader.text())
    if service_type == SERVICE_APAAS:
        room, user = reader.text(), reader.text()
        return DecodedService(service_type, privileges, channel=room, user_id=user, role=reader.int16())
    if service_type == SERVICE_RTM2:
        user = reader.text()
        permissions: dict[int, dict[int, tuple[str, ...]]] = {}
        for _ in range(reader.uint16()):
            by_permission = permissions.setdefault(reader.uint16(), {})
            for _ in range(reader.uint16()):
                permission = reader.uint16()
                by_permission[permission] = tuple(reader.text() for _ in range(reader.uint16()))
        return DecodedService(service_type, privileges, user_id=user, permissions=permissions)
    return DecodedService(service_type, privileges)  # FPA, ConvoAI, STT: privileges only


def _decode_006(body: str) -> DecodedToken:
    app_id, content = body[:_APP_ID_LENGTH], body[_APP_ID_LENGTH:]
    if not is_hex32(app_id):
        raise InvalidTokenError("006 token does not start with a 32-hex App ID")
    reader = _Reader(_b64(content))
    signature = reader.bytes_()
    channel_crc = reader.uint32()
    account_crc = reader.uint32()
    message = reader.bytes_()
    reader.end()
    inner = _Reader(message)
    salt = inner.uint32()
    ts = inner.uint32()
    privileges = inner.uint32_map()
    inner.end()
    if set(privileges) == {PRIVILEGE_RTM_LOGIN_006}:
        service = DecodedService(SERVICE_RTM, privileges)
        expires_at = ts  # Agora ignores the RTM privilege's own expiry
    else:
        service = DecodedService(SERVICE_RTC, privileges)
        expires_at = min([ts, *(value for value in privileges.values() if value)])
    return DecodedToken(
        version=VERSION_006,
        app_id=app_id,
        issued_at=ts - TS_006_OFFSET,
        expires_at=expires_at,
        salt=salt,
        services=(service,),
        signature=signature,
        signed_content=message,
        ts=ts,
        channel_crc=channel_crc,
        account_crc=account_crc,
    )


def decode(token: str) -> DecodedToken:
    """Every field of a 006 or 007 token; InvalidTokenError if it is neither.

    A 007 service of a type this engine does not know ends the decoding there: the format gives
    a service's payload no length, so its fields and any service after it cannot be located. It
    is kept as a DecodedService with `raw` set (and `complete` is False); the signature still
    covers every byte, so verify() answers for it as for any token.
    """
    if not isinstance(token, str) or not token.isascii():
        raise InvalidTokenError("token must be an ASCII string")
    version, body = token[:3], token[3:]
    try:
        if version == VERSION_007:
            return _decode_007(body)
        if version == VERSION_006:
            return _decode_006(body)
    except struct.error as exc:  # pragma: no cover - _Reader checks lengths first
        raise InvalidTokenError("token content is malformed") from exc
    raise InvalidTokenError("token version must be 006 or 007")


def _crc(text: str) -> int:
    return zlib.crc32(text.encode("utf-8")) & 0xFFFFFFFF


def verify(
    token: str | DecodedToken,
    app_certificate: str,
    *,
    channel: str | None = None,
    account: str | None = None,
) -> bool:
    """True when the token's signature verifies under app_certificate.

    007 carries everything it signs. 006 signs the channel and uid but carries only their
    CRC32s, so pass the `channel` and `account` (str(uid); RTM: channel=user id, account="")
    you expect, for example from the audit row.
    """
    decoded = decode(token) if isinstance(token, str) else token
    if not is_hex32(app_certificate):
        return False
    cert = app_certificate.encode("utf-8")
    if decoded.version == VERSION_007:
        key = hmac.new(struct.pack("<I", decoded.issued_at), cert, hashlib.sha256).digest()
        key = hmac.new(struct.pack("<I", decoded.salt), key, hashlib.sha256).digest()
        expected = hmac.new(key, decoded.signed_content, hashlib.sha256).digest()
        return hmac.compare_digest(expected, decoded.signature)
    if channel is None or account is None:
        raise ValueError("a 006 token is verified against the channel and account it names")
    if _crc(channel) != decoded.channel_crc or _crc(account) != decoded.account_crc:
        return False
    message = decoded.app_id.encode("utf-8") + channel.encode("utf-8") + account.encode("utf-8")
    expected = hmac.new(cert, message + decoded.signed_content, hashlib.sha256).digest()
    return hmac.compare_digest(expected, decoded.signature)


def identify_certificate(
    token: str | DecodedToken,
    certificates: Mapping[str, str],
    *,
    channel: str | None = None,
    account: str | None = None,
) -> str | None:
    """Which of several certificates signed a token, for rotation: the label of the first in
    `certificates` (label -> certificate, e.g. {"primary": ..., "secondary": ...}) under which
    it verifies, or None. A 006 token needs its channel and account, as for verify()."""
    decoded = decode(token) if isinstance(token, str) else token
    if decoded.version == VERSION_006 and (channel is None or account is None):
        raise ValueError("a 006 token is verified against the channel and account it names")
    for label, certificate in certificates.items():
        if verify(decoded, certificate, channel=channel, account=account):
            return label
    return None


def certificate_fingerprint(app_certificate: str) -> str:
    """A short label that tells certificates apart in audit rows and logs without revealing
    them: "sha256:" and the first 8 hex digits of the SHA-256 of the certificate as given (its
    spelling is what signs, so two spellings are two keys)."""
    if not is_hex32(app_certificate):
        raise ValueError("app_certificate must be 32 hex characters")
    return "sha256:" + hashlib.sha256(app_certificate.encode("ascii")).hexdigest()[:8]


def privilege_name(version: str, service_type: int, privilege: int) -> str:
    """A privilege's name as Agora's sources spell it, or "privilege_<id>" if they name none."""
    names = PRIVILEGE_NAMES_006 if version == VERSION_006 else PRIVILEGE_NAMES
    return names.get(service_type, {}).get(privilege, f"privilege_{privilege}")


def privilege_expiries(decoded: DecodedToken, service: DecodedService) -> tuple[PrivilegeExpiry, ...]:
    """When each privilege of one decoded service ends, by privilege id.

    007 stores seconds after issue, 006 absolute unix times; 0 in either means no expiry of the
    privilege's own. RTM 006 ends with the token (Agora ignores the privilege's expiry).
    """
    expiries = []
    for privilege, value in sorted(service.privileges.items()):
        if decoded.version == VERSION_006 and service.type == SERVICE_RTM:
            expires_at: int | None = decoded.expires_at
        elif decoded.version == VERSION_006:
            expires_at = value or None
        else:
            expires_at = decoded.issued_at + value if value else None
        seconds = None if expires_at is None else expires_at - decoded.issued_at
        name = privilege_name(decoded.version, service.type, privilege)
        expiries.append(PrivilegeExpiry(privilege, name, seconds, expires_at))
    return tuple(expiries)


def _service_summary(decoded: DecodedToken, index: int, service: DecodedService) -> dict:
    summary: dict = {"type": service.name, "type_id": service.type}
    if service.raw is not None:
        after = decoded.declared_services - index - 1
        return {
            **summary,
            "raw": service.raw.hex(),
            "services_after": after,
            "note": (
                f"service type {service.type} is none that Agora's builders define here; a 007 "
                "service carries no length, so its fields and the services after it cannot be "
                "read (raw: every byte after its type number); the signature covers them all"
            ),
        }
    summary["privileges"] = {str(k): v for k, v in sorted(service.privileges.items())}
    summary["expiries"] = {
        e.name: {"id": e.privilege, "seconds": e.seconds, "expires_at": e.expires_at}
        for e in privilege_expiries(decoded, service)
    }
    if service.type == SERVICE_APAAS:
        summary.update(room_uuid=service.channel, user_uuid=service.user_id, role=service.role)
        return summary
    for key in ("channel", "account", "user_id"):
        if (value := getattr(service, key)) is not None:
            summary[key] = value
    if service.permissions is not None:
        summary["permissions"] = {
            RTM2_RESOURCE_NAMES.get(resource, f"resource_{resource}"): {
                RTM2_PERMISSION_NAMES.get(permission, f"permission_{permission}"): list(names)
                for permission, names in by_permission.items()
            }
            for resource, by_permission in service.permissions.items()
        }
    return summary


def inspect(
    token: str,
    app_certificate: str,
    *,
    channel: str | None = None,
    account: str | None = None,
) -> dict:
    """A JSON-ready summary of a token and whether its signature verifies.

    Each service: its type (name and `type_id`), raw `privileges` (id -> stored value), their
    `expiries` (name -> seconds after issue and unix time), and whom it names. For 006, pass
    the channel and account (see verify); without them `signature_valid` is None.
    """
    decoded = decode(token)
    if decoded.version == VERSION_006 and (channel is None or account is None):
        valid = None
    else:
        valid = verify(decoded, app_certificate, channel=channel, account=account)
    return {
        "version": decoded.version,
        "app_id": decoded.app_id,
        "issued_at": decoded.issued_at,
        "expires_at": decoded.expires_at,
        "salt": decoded.salt,
        "services": [_service_summary(decoded, i, s) for i, s in enumerate(decoded.services)],
        "signature_valid": valid,
    }
