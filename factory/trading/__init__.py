"""Trading the factory's models: which models trade, the event-driven backtest of their
out-of-sample signals, today's target portfolio and the paper-trading runner."""
