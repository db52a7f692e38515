"""The data plane's parts: endpoint table (state), loading and applying configs (table), request
steps (steps, routing), shadow copies (shadows). `driftgate.serving.dataplane.DataPlane` joins them."""
