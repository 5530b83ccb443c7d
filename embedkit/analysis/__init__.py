"""What records mean: statistics, the speed/quality tradeoff and its frontier, the decision card."""
