// Placeholder until the test-server module lands: starts nothing.
export default function setup() {}
