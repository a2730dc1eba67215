# Greeter
A friendly agent that greets people and pays them a compliment in their favourite colour.

```python
@playbook
async def FavouriteColour(name: str) -> str:
    """The colour a person likes best (a stand-in for a lookup in a real system)."""
    colours = {"ada": "green", "alan": "blue", "grace": "red"}
    return colours.get(name.strip().lower(), "yellow")
```

## Main
### Triggers
- At the beginning

### Steps
- Greet the user and ask for their $name
- Look up their favourite colour with FavouriteColour
- Get a compliment for them from Compliment, passing their name and colour
- Tell the user the compliment, then say goodbye

## Compliment($name: str, colour: str) -> str
A one-sentence compliment.

### Steps
- Write a warm one-sentence compliment for $name that mentions the colour
- Return it
