from trainground.cli import main

main()
