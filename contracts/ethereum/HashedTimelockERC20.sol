// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Permit.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";

/// @notice Hashed time-lock for ERC-20 tokens, as the dvp HTLC rules require:
///  - the lock id is derived from every term, so the same terms can never lock twice;
///  - the preimage is exactly 32 bytes (bytes32, and claim calldata of exactly that size)
///    and the hashlock is SHA-256 over those raw bytes;
///  - a claim pays the fixed recipient whoever submits it, and only before expiry;
///  - a refund goes only to the sender, is sent only by the sender, and only at or after expiry.
/// ``lockWithPermit`` makes a lock one transaction on an ERC-2612 token: the sender's permit
/// for exactly the locked amount and this contract must be valid (signer, spender, value,
/// unused token nonce, deadline), or the whole lock reverts.
contract HashedTimelockERC20 {
    using SafeERC20 for IERC20;

    enum Status { None, Locked, Claimed, Refunded }

    struct Lock {
        address sender;
        address recipient;
        address token;
        uint256 amount;
        bytes32 hashlock;
        uint64 expiry;
        Status status;
        bytes32 preimage;
        bytes32 nonce;
    }

    /// An ERC-2612 signature of the token owner (the lock's sender) over
    /// (owner, this contract, amount, token nonce, deadline).
    struct Permit {
        uint256 deadline;
        uint8 v;
        bytes32 r;
        bytes32 s;
    }

    mapping(bytes32 => Lock) private _locks;

    event Locked(
        bytes32 indexed lockId,
        address indexed sender,
        address indexed recipient,
        address token,
        uint256 amount,
        bytes32 hashlock,
        uint64 expiry
    );
    event Claimed(bytes32 indexed lockId, bytes32 preimage);
    event Refunded(bytes32 indexed lockId);

    error ZeroAmount();
    error ZeroRecipient();
    error ExpiryNotInFuture();
    error DuplicateLock();
    error NoSuchLock();
    error NotLocked();
    error Expired();
    error NotExpired();
    error WrongPreimage();
    error PreimageSize();
    error OnlySender();

    function lockIdFor(
        address sender,
        address recipient,
        address token,
        uint256 amount,
        bytes32 hashlock,
        uint64 expiry,
        bytes32 nonce
    ) public view returns (bytes32) {
        return keccak256(abi.encode(block.chainid, address(this), sender, recipient, token, amount, hashlock, expiry, nonce));
    }

    function lock(
        address recipient,
        address token,
        uint256 amount,
        bytes32 hashlock,
        uint64 expiry,
        bytes32 nonce
    ) external returns (bytes32 lockId) {
        lockId = _open(recipient, token, amount, hashlock, expiry, nonce);
        IERC20(token).safeTransferFrom(msg.sender, address(this), amount);
    }

    function lockWithPermit(
        address recipient,
        address token,
        uint256 amount,
        bytes32 hashlock,
        uint64 expiry,
        bytes32 nonce,
        Permit calldata permit
    ) external returns (bytes32 lockId) {
        lockId = _open(recipient, token, amount, hashlock, expiry, nonce);
        // Not wrapped in try/catch: a permit that fails (other terms, spender, deadline, or a
        // replayed signature) fails the lock, instead of falling back to an older allowance.
        IERC20Permit(token).permit(msg.sender, address(this), amount, permit.deadline, permit.v, permit.r, permit.s);
        IERC20(token).safeTransferFrom(msg.sender, address(this), amount);
    }

    function _open(
        address recipient,
        address token,
        uint256 amount,
        bytes32 hashlock,
        uint64 expiry,
        bytes32 nonce
    ) private returns (bytes32 lockId) {
        if (amount == 0) revert ZeroAmount();
        if (recipient == address(0)) revert ZeroRecipient();
        if (expiry <= block.timestamp) revert ExpiryNotInFuture();
        lockId = lockIdFor(msg.sender, recipient, token, amount, hashlock, expiry, nonce);
        if (_locks[lockId].status != Status.None) revert DuplicateLock();
        _locks[lockId] = Lock(msg.sender, recipient, token, amount, hashlock, expiry, Status.Locked, bytes32(0), nonce);
        emit Locked(lockId, msg.sender, recipient, token, amount, hashlock, expiry);
    }

    function claim(bytes32 lockId, bytes32 preimage) external {
        // Selector + two words, nothing more: an oversized preimage is refused, not truncated.
        if (msg.data.length != 68) revert PreimageSize();
        Lock storage l = _locks[lockId];
        if (l.status == Status.None) revert NoSuchLock();
        if (l.status != Status.Locked) revert NotLocked();
        if (block.timestamp >= l.expiry) revert Expired();
        if (sha256(abi.encodePacked(preimage)) != l.hashlock) revert WrongPreimage();
        l.status = Status.Claimed;
        l.preimage = preimage;
        IERC20(l.token).safeTransfer(l.recipient, l.amount);
        emit Claimed(lockId, preimage);
    }

    function refund(bytes32 lockId) external {
        Lock storage l = _locks[lockId];
        if (l.status == Status.None) revert NoSuchLock();
        if (l.status != Status.Locked) revert NotLocked();
        if (msg.sender != l.sender) revert OnlySender();
        if (block.timestamp < l.expiry) revert NotExpired();
        l.status = Status.Refunded;
        IERC20(l.token).safeTransfer(l.sender, l.amount);
        emit Refunded(lockId);
    }

    function getLock(bytes32 lockId) external view returns (Lock memory) {
        return _locks[lockId];
    }
}
