"""A team's keeper: an always-on device that stores and serves the team's folders as
ciphertext, so members receive from each other without being online at the same time.

- `epoch`: the team secret of the current epoch and the folder passwords derived from it;
  a removal starts a new epoch;
- `plan`: who holds what through the keeper, as a pure function of the roster;
- `control`: the leader's signed, plaintext instructions to the keeper (folder and device
  IDs only) and the signed key file that carries each epoch's secret to members.

See docs/keeper.md for the measurements and the design this implements.
"""
