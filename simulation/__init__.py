"""The local simulation: three AWS accounts on moto, both stacks deployed by the real program, and the seams.

Development-only (it needs moto, the `dev` extra). The operator CLI (`irf`) imports it lazily, for
`irf simulate` and `irf preview`; nothing here is packaged into a Lambda.
"""
