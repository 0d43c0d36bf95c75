"""The core: pure plans and typed AWS ports shared by the Lambda handlers, the operator CLI and the simulation."""
