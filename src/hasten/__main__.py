from hasten.cli import main

main()
