# Seller
Sells a bicycle. Starts the negotiation, and waits for each of the buyer's offers.

```python
import os


@playbook
async def Counter(offer: int, asking: int) -> int:
    """The seller's next price: halfway between the offer and the last asking price."""
    if os.environ.get("NEGOTIATION_CRASH_AT") == str(offer):
        os._exit(137)  # crash while the buyer waits for our answer
    return (offer + asking + 1) // 2
```

## Negotiate
### Triggers
- At the beginning

```python
buyer = await CreateAgent("Buyer", budget=400)
asking = 600
await Say("user", f"Seller: asking {asking} for the bicycle")
await SendMessage(f"agent {buyer.id}", str(asking))
while True:
    reply = await WaitForMessage(f"agent {buyer.id}")
    if reply.startswith("deal"):
        await Say("user", f"Seller: sold for {asking}")
        break
    offer = int(reply)
    asking = await Counter(offer, asking)
    await Say("user", f"Seller: buyer offers {offer}, I ask {asking}")
    await SendMessage(f"agent {buyer.id}", str(asking))
```

# Buyer
Wants the bicycle for as little as possible; never pays more than its budget.

## Haggle

```python
budget = self.state.budget
offer = 300
while True:
    asking = int(await WaitForMessage("Seller"))
    if asking <= offer or asking <= budget and asking - offer <= 20:
        await SendMessage("Seller", f"deal at {asking}")
        await Say("user", f"Buyer: deal at {asking}")
        break
    await SendMessage("Seller", str(offer))
    offer = min(budget, offer + 40)
```
