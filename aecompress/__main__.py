from aecompress.cli import main

main()
