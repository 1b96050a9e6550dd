"""Owner signatures above Syncthing: who wrote a replicated file, checked by its readers.

Syncthing proves only that a change came from a device in the folder's device list. As
long as a reader's inbox lists its owner alone, that is the owner; once it also lists a
relay (the team's keeper), every device that can talk to the relay can change the
folder. So owners sign what they publish with their Syncthing device key, and readers
believe only bytes covered by a valid signature of the folder's owner (docs/keeper.md).

- `keys`: the device's key and certificate (the only module that uses `cryptography`);
- `signed`: the signed-file format (payload line + signature line), bound to folder and
  path;
- `chunks`: chunk hashes of append-only files, so a reader checks only what was appended;
- `wrap`: team secrets sealed for one member (a join secret, then the member's own key).
"""
