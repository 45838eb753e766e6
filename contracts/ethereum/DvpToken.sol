// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {ERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Permit.sol";

/// @notice A test asset (cash or security) that only its issuer can mint, with ERC-2612
/// permits so that a lock or a DvP step is one transaction.
contract DvpToken is ERC20, ERC20Permit {
    address public immutable issuer;
    uint8 private immutable _decimals;

    error OnlyIssuer();

    constructor(string memory name_, string memory symbol_, uint8 decimals_, address issuer_) ERC20(name_, symbol_) ERC20Permit(name_) {
        issuer = issuer_;
        _decimals = decimals_;
    }

    function decimals() public view override returns (uint8) {
        return _decimals;
    }

    function mint(address to, uint256 amount) external {
        if (msg.sender != issuer) revert OnlyIssuer();
        _mint(to, amount);
    }
}
