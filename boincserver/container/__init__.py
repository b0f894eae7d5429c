"""The programs that run inside the images: thin entry points in images/ call their main().

jobs (with apps): `boincserver-jobs` in the apache service; setup (with secrets and vault):
`boincserver-project-setup` in the makeproject job. Standard library, boincserver.boinc and
boincserver.catalogue only (the images ship nothing else of boincserver); MySQLdb, which only
the images have, is imported where a database is opened. Every BOINC fact they use comes from
boincserver.boinc.
"""
