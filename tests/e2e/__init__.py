"""End-to-end tests on a kind cluster (Docker + kind): chart, KubeRay and a real tiny job."""
