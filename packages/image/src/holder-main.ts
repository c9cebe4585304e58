// The mount holder's entry (see holder.ts): started by startHolder() under unshare(1) in a mount namespace of its own.
import { holderMain } from './holder.js';

holderMain();
