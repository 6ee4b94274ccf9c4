from netbed.cli import main

main()
