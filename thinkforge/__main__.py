from .cli import main

# guarded: vLLM worker processes re-import the main module when they spawn
if __name__ == "__main__":
    main()
