// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Permit.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";

/// @notice Single-ledger delivery versus payment: the seller proposes (and approves its
/// securities), the buyer accepts (having approved its cash) and one transaction moves
/// both legs, or neither.  On ERC-2612 tokens each side is one transaction: the seller's
/// permit (its consent to delivery) goes with the proposal, the buyer's with the acceptance;
/// an invalid permit reverts the whole step.
contract DvpSettlement {
    using SafeERC20 for IERC20;

    enum Status { None, Open, Settled, Cancelled }

    struct Order {
        address seller;
        address buyer;
        address security;
        uint256 securityAmount;
        address cash;
        uint256 cashAmount;
        uint64 deadline;
        Status status;
    }

    /// An ERC-2612 signature of the token owner (msg.sender) over
    /// (owner, this contract, value, token nonce, deadline).
    struct Permit {
        uint256 value;
        uint256 deadline;
        uint8 v;
        bytes32 r;
        bytes32 s;
    }

    mapping(bytes32 => Order) private _orders;

    event Proposed(bytes32 indexed orderId, address indexed seller, address indexed buyer);
    event Settled(bytes32 indexed orderId);
    event Cancelled(bytes32 indexed orderId);

    error ZeroAmount();
    error DeadlinePassed();
    error DuplicateOrder();
    error NotOpen();
    error OnlyBuyer();
    error OnlySeller();
    error PermitValue();

    function orderIdFor(
        address seller,
        address buyer,
        address security,
        uint256 securityAmount,
        address cash,
        uint256 cashAmount,
        uint64 deadline,
        bytes32 nonce
    ) public view returns (bytes32) {
        return keccak256(
            abi.encode(block.chainid, address(this), seller, buyer, security, securityAmount, cash, cashAmount, deadline, nonce)
        );
    }

    function propose(
        address buyer,
        address security,
        uint256 securityAmount,
        address cash,
        uint256 cashAmount,
        uint64 deadline,
        bytes32 nonce
    ) public returns (bytes32 orderId) {
        if (securityAmount == 0 || cashAmount == 0) revert ZeroAmount();
        if (deadline <= block.timestamp) revert DeadlinePassed();
        orderId = orderIdFor(msg.sender, buyer, security, securityAmount, cash, cashAmount, deadline, nonce);
        if (_orders[orderId].status != Status.None) revert DuplicateOrder();
        _orders[orderId] = Order(msg.sender, buyer, security, securityAmount, cash, cashAmount, deadline, Status.Open);
        emit Proposed(orderId, msg.sender, buyer);
    }

    /// The seller's permit sets its allowance to ``permit.value``, which must cover this
    /// order (and the seller's other open orders of the same security: it replaces them).
    function proposeWithPermit(
        address buyer,
        address security,
        uint256 securityAmount,
        address cash,
        uint256 cashAmount,
        uint64 deadline,
        bytes32 nonce,
        Permit calldata permit
    ) external returns (bytes32 orderId) {
        if (permit.value < securityAmount) revert PermitValue();
        orderId = propose(buyer, security, securityAmount, cash, cashAmount, deadline, nonce);
        IERC20Permit(security).permit(msg.sender, address(this), permit.value, permit.deadline, permit.v, permit.r, permit.s);
    }

    function accept(bytes32 orderId) public {
        Order storage o = _orders[orderId];
        if (o.status != Status.Open) revert NotOpen();
        if (msg.sender != o.buyer) revert OnlyBuyer();
        if (block.timestamp >= o.deadline) revert DeadlinePassed();
        o.status = Status.Settled;
        IERC20(o.security).safeTransferFrom(o.seller, o.buyer, o.securityAmount);
        IERC20(o.cash).safeTransferFrom(o.buyer, o.seller, o.cashAmount);
        emit Settled(orderId);
    }

    /// The buyer's permit is for exactly the order's cash amount, pulled in the same call.
    function acceptWithPermit(bytes32 orderId, Permit calldata permit) external {
        Order storage o = _orders[orderId];
        if (o.status != Status.Open) revert NotOpen();
        if (permit.value != o.cashAmount) revert PermitValue();
        IERC20Permit(o.cash).permit(msg.sender, address(this), permit.value, permit.deadline, permit.v, permit.r, permit.s);
        accept(orderId);
    }

    function cancel(bytes32 orderId) external {
        Order storage o = _orders[orderId];
        if (o.status != Status.Open) revert NotOpen();
        if (msg.sender != o.seller) revert OnlySeller();
        o.status = Status.Cancelled;
        emit Cancelled(orderId);
    }

    function getOrder(bytes32 orderId) external view returns (Order memory) {
        return _orders[orderId];
    }
}
