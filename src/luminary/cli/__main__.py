from luminary.cli import main

main()
