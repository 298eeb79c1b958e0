"""Live training plots and the data behind them."""
