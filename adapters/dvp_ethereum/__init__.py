"""dvp adapter for Ethereum-compatible chains (web3.py), and its anvil launcher."""

from .adapter import EthereumAdapter
from .config import EthereumConfig

__all__ = ["EthereumAdapter", "EthereumConfig"]
