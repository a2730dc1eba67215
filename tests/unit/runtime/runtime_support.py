"""What the runtime tests' programs share: `effect(line)` appends to the side-effect log, `crash_once(name)`
raises the harness's Crash (a stand-in for the process dying) the first time it is reached."""

TOOLS = '''
```python
import os

def effect(line):
    with open("EFFECTS", "a") as f:
        f.write(line + "\\n")

def crash_once(name):
    flag = "EFFECTS" + "." + name
    if not os.path.exists(flag):
        open(flag, "w").close()
        raise pbw_test_crash(name)
```
'''
