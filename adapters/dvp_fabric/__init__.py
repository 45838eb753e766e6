"""dvp's Hyperledger Fabric platform: a local network launcher (``network``,
``launcher``) and, later, the Gateway adapter."""
