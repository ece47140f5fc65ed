"""faultdrill graders: drive any submission through the contract, inject faults, score it."""
KIT_VERSION = "0.1.0"
