"""What a model costs, measured by the harness: complexity, latency, and the machine it ran on."""
