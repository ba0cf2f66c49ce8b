from hekta_redcap.cli import main

main()
