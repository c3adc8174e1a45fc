"""Result videos kept by soraq: probing them (PyAV), storing them (obstore, one library for
local files and S3-compatible stores), and the signed links clients read them through. May
import core/ only."""
