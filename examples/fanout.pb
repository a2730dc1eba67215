# Researcher:AI
Fans out with asyncio.gather: call paths are given when the calls are made, so replay matches
whatever order the calls finished in.

```python
import asyncio as _asyncio


@playbook
async def Lookup(country: str) -> str:
    await _asyncio.sleep(0.05 * len(country) % 0.2)
    return f"{country} has {len(country)} letters"
```

## Main

```python
countries = ["Bhutan", "Nepal", "India", "Peru"]
facts = await asyncio.gather(*(Lookup(c) for c in countries))
for fact in facts:
    await Say("user", fact)
```
