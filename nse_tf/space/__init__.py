"""What can be searched: operations and pools, macro spaces, architectures (JSON), the published networks and the MobileNetV2-style baseline, with their analytic MACs."""
