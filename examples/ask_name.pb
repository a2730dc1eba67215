# Greeter:AI
Asks the user for their name and greets them. Answers come from --input, then stdin.

## Main

```python
await Say("user", "What's your name?")
name = await Yield("user")
await Say("user", f"Hello, {name}! Which city are you in?")
city = await Yield("user")
await Say("user", f"Greetings to {city}, {name}.")
```
