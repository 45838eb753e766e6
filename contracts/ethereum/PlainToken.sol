// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @notice A test asset without ERC-2612 permits, as many deployed tokens are: the adapter
/// must fall back to an approve sent back to back with the lock.
contract PlainToken is ERC20 {
    address public immutable issuer;

    error OnlyIssuer();

    constructor(string memory name_, string memory symbol_, address issuer_) ERC20(name_, symbol_) {
        issuer = issuer_;
    }

    function mint(address to, uint256 amount) external {
        if (msg.sender != issuer) revert OnlyIssuer();
        _mint(to, amount);
    }
}
